"""Pure file-format code (image sniff/decode, WAV/MP3, PLY, npz): no HDF5, no planning."""
