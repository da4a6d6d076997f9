package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidateMappings(t *testing.T) {
	c := &Config{Provisioners: []Provisioner{
		{Name: "good", UserMapping: map[string]string{"userName": "{{ .mail | lower }}", "title": ""}, GroupMapping: map[string]string{"displayName": "{{ .cn }}"}},
		{Name: "okta", UserMapping: map[string]string{"userName": "{{ .mail | lower ", "nosuch": "x"}},
		{Name: "grp", GroupMapping: map[string]string{"members": "{{ .member }}", "displayName": "{{ .cn"}},
	}}
	var lines []string
	for _, e := range validateMappings(c) {
		lines = append(lines, e.Error())
	}
	require.ElementsMatch(t, []string{
		`provisioner "okta": user_mapping.nosuch: "nosuch" is not an attribute of urn:ietf:params:scim:schemas:core:2.0:User`,
		`provisioner "okta": user_mapping.userName: template: userName:1: unclosed action`,
		`provisioner "grp": group_mapping.members: not a group attribute the bridge pushes (want "displayName" or "externalId", or an extension urn:…)`,
		`provisioner "grp": group_mapping.displayName: template: displayName:1: unclosed action`,
	}, lines, strings.Join(lines, "\n"))
}
