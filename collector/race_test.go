//go:build race

package collector

// raceEnabled: the race detector slows code several times, so timing
// bounds and iteration counts are relaxed under it.
const raceEnabled = true
