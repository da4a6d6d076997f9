// Package lease elects one leader among the instances sharing a directory, through a lease
// entry in that directory taken and renewed by compare-and-swap, and fences the leader on
// its monotonic clock so that it stops pushing before anyone else may take over.
package lease
