package cli

// Path resolves p against the run's working directory, so that commands
// under test resolve relative paths like the real binary does.
func (a *App) Path(p string) string { return a.abs(p) }
