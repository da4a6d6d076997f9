package main

import (
	"context"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/bridge/gctune"
)

// newLogger builds the root logger: JSON lines on stderr for journald, or console output,
// at the level of [log]. A daemon hands the output to the bridge, which applies a reloaded
// [log] to it.
func newLogger(w io.Writer, c config.Log) (zerolog.Logger, *bridge.LogOutput) {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	out, err := bridge.NewLogOutput(w, c)
	if err != nil {
		// The configuration was validated: this is a programming error, not the admin's.
		out, _ = bridge.NewLogOutput(w, config.Log{})
		logger := out.Logger()
		logger.Error().Err(err).Msg("bad [log] settings; logging at info in JSON")
	}
	// This process runs one daemon: events below its level need not even be built.
	out.OnLevel(zerolog.SetGlobalLevel)
	return out.Logger(), out
}

func cmdServe(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "serve", "--config FILE")
	path := fs.String("config", "", "configuration file (required)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *path == "" {
		return usageErr(e, fs, "serve: --config is required")
	}
	cfg, err := loadForDaemon(*path)
	if err != nil {
		return fail(e, "serve", err)
	}
	logger, out := newLogger(e.stderr, cfg.Log)
	for _, w := range cfg.Warnings {
		logger.Warn().Str("config", *path).Msg(w)
	}
	return serveConfig(ctx, e, cfg, logger, out, func() (*config.Config, error) { return loadForDaemon(*path) }, nil)
}

// loadForDaemon loads a configuration and its secrets.
func loadForDaemon(path string) (*config.Config, error) {
	cfg, err := bridge.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	if err := cfg.LoadSecrets(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// serveConfig runs a bridge until ctx ends, reloading on SIGHUP with reloadFn. started, when
// set, is called once the bridge is ready (the demo prints its banner then).
func serveConfig(ctx context.Context, e *env, cfg *config.Config, logger zerolog.Logger, out *bridge.LogOutput, reloadFn func() (*config.Config, error), started func(*bridge.Bridge)) int {
	// The heap may grow by gctune.DefaultHeadroom past what is live before a collection
	// (README: "Memory and the garbage collector"); GOGC in the environment turns it off.
	if t, ok := gctune.Start(gctune.DefaultHeadroom); ok {
		defer t.Stop()
		logger.Debug().Uint64("headroom_bytes", gctune.DefaultHeadroom).Msg("garbage collector: heap headroom set (GOGC is not set)")
	}
	b, err := bridge.New(bridge.Options{Config: cfg, Logger: logger, Log: out, Registry: prometheus.NewRegistry(), Notify: bridge.Notify, Watchdog: bridge.WatchdogTimeout()})
	if err != nil {
		return fail(e, "serve", err)
	}
	if err := b.Start(ctx); err != nil {
		logger.Error().Err(err).Msg("start failed")
		_ = b.Stop(context.Background())
		if ctx.Err() != nil {
			return exitOK
		}
		return exitFail
	}
	if started != nil {
		started(b)
	}
	for {
		select {
		case <-ctx.Done():
			logger.Info().Msg("signal received; draining")
			if err := b.Stop(context.Background()); err != nil {
				logger.Error().Err(err).Msg("stop")
				return exitFail
			}
			return exitOK
		case <-e.reload:
			bridge.Notify("RELOADING=1")
			// The bridge logs how the reload went, naming the keys that need a restart.
			newCfg, err := reloadFn()
			if err != nil {
				b.ReloadFailed(err)
			} else {
				for _, w := range newCfg.Warnings {
					logger.Warn().Msg(w)
				}
				_ = b.Reload(newCfg)
			}
			bridge.Notify("READY=1")
		}
	}
}
