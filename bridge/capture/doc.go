// Package capture follows the directory's change log from a durable cursor and hands each
// batch of changes, re-read by stable id and classified as users or groups, to the outbound
// engine inside the same state transaction that advances the cursor.
package capture
