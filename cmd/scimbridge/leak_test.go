package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives its tests: run must leave nothing
// behind, as it is called again and again here.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
