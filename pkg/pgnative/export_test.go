package pgnative

// WithPortPicker makes Start take its ports from pick instead of asking the kernel for a free
// one, so that a test can hand it a taken port.
func WithPortPicker(pick func() (int, error)) Option {
	return func(c *config) error {
		c.pickPort = pick
		return nil
	}
}
