"""The encoder's search: schedules and the optimisation that fits a frame or a group of frames."""
