package main

import (
	"context"
	"strings"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/bridge/doctor"
)

func cmdDoctor(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "doctor", "--config FILE")
	path := fs.String("config", "", "configuration file (required)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *path == "" {
		return usageErr(e, fs, "doctor: --config is required")
	}
	var results []doctor.Result
	cfg, err := bridge.LoadConfig(*path)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			if line != "" {
				results = append(results, doctor.Result{Status: doctor.Fail, Check: "config", Message: line, Fix: "correct the key (scimbridge check-config lists every problem)"})
			}
		}
		doctor.Print(e.stdout, results)
		return exitFail
	}
	for _, w := range cfg.Warnings {
		results = append(results, doctor.Result{Status: doctor.Warn, Check: "config", Message: w, Fix: "see the warning"})
	}
	if err := cfg.LoadSecrets(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			if line != "" {
				results = append(results, doctor.Result{
					Status: doctor.Fail, Check: "config.secrets", Message: line,
					Fix: "run doctor where the secrets are readable, as the daemon reads them (e.g. CREDENTIALS_DIRECTORY=/etc/scimbridge for LoadCredential= paths)",
				})
			}
		}
	}
	results = append(results, doctor.Run(ctx, doctor.Options{Config: cfg, Logger: zerolog.Nop()})...)
	doctor.Print(e.stdout, results)
	if doctor.Worst(results) == doctor.Fail {
		return exitFail
	}
	return exitOK
}
