"""Operating it: the control endpoint, the doctor, the state directory, the command line."""
