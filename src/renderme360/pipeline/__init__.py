"""The extraction pipeline: discover -> inventory -> plan -> resume/execute -> record, run."""
