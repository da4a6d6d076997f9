// Package state is the bridge's durable state: one bbolt file holding change-log cursors,
// id maps and the work the outbound engine derives from them, committed together.
package state
