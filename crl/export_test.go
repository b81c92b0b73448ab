package crl

import "time"

// NextRun exposes, to the tests, how long Run waits after a RunDue at now.
func (u *Updater) NextRun(now time.Time) time.Duration { return u.nextRun(now) }
