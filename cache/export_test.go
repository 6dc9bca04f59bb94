package cache

// SetRand makes f the source of o's jitter and XFetch draws (uniform in
// [0, 1); default math/rand/v2).
func SetRand(o *Options, f func() float64) { o.random = f }
