"""The output folder: path layout and its parsers, safe writes, reports, reading it back."""
