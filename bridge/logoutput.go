package bridge

import (
	"fmt"
	"io"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge/config"
)

// LogOutput is the daemon's log destination at the level and in the format of [log]. The
// root logger (Logger) and every logger derived from it write through it, so a reload that
// changes [log] applies to all of them at once: events below the level are dropped here, and
// the format decides how what is left is written.
type LogOutput struct {
	w       io.Writer
	console zerolog.ConsoleWriter
	level   atomic.Int32 // zerolog.Level
	asText  atomic.Bool  // format = "console"
	onLevel atomic.Pointer[func(zerolog.Level)]
}

// OnLevel calls fn with the level now and after every change. The owner of the process
// passes zerolog.SetGlobalLevel, so that events below the level are not even built.
func (o *LogOutput) OnLevel(fn func(zerolog.Level)) {
	o.onLevel.Store(&fn)
	fn(zerolog.Level(o.level.Load()))
}

// NewLogOutput writes to w (stderr for journald) as c says.
func NewLogOutput(w io.Writer, c config.Log) (*LogOutput, error) {
	o := &LogOutput{w: w, console: zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}}
	apply, err := o.prepare(c)
	if err != nil {
		return nil, err
	}
	apply()
	return o, nil
}

// Logger is a root logger writing through o, with timestamps. Its own level lets everything
// through: o filters.
func (o *LogOutput) Logger() zerolog.Logger {
	return zerolog.New(o).Level(zerolog.TraceLevel).With().Timestamp().Logger()
}

// prepare checks c and returns the function that applies it.
func (o *LogOutput) prepare(c config.Log) (func(), error) {
	level := zerolog.InfoLevel
	if c.Level != "" {
		l, err := zerolog.ParseLevel(c.Level)
		if err != nil || l == zerolog.NoLevel {
			return nil, fmt.Errorf("log.level: unknown value %q", c.Level)
		}
		level = l
	}
	var text bool
	switch c.Format {
	case "", "json":
	case "console":
		text = true
	default:
		return nil, fmt.Errorf("log.format: unknown value %q", c.Format)
	}
	return func() {
		o.level.Store(int32(level))
		o.asText.Store(text)
		if fn := o.onLevel.Load(); fn != nil {
			(*fn)(level)
		}
	}, nil
}

// Write writes an event that has no level.
func (o *LogOutput) Write(p []byte) (int, error) { return o.WriteLevel(zerolog.NoLevel, p) }

// WriteLevel writes p, an event at level l, unless l is below the configured level.
func (o *LogOutput) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l != zerolog.NoLevel && l < zerolog.Level(o.level.Load()) {
		return len(p), nil
	}
	if o.asText.Load() {
		return o.console.Write(p)
	}
	return o.w.Write(p)
}
