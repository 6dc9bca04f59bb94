package console

// SampleNow takes one sample now, as Start does every Options.Sample.
func SampleNow(c *Console) { c.sample() }
