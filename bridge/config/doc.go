// Package config loads, defaults and validates scimbridge's TOML configuration.
package config
