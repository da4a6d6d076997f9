package outbound

import (
	"bytes"
	"fmt"

	"github.com/scimbridge/scimbridge/bridge/capture"
	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/ldapstore"
)

// The state file keeps, next to the change reader's id map, an index of its users by DN:
// normalised DN (normDN) → id, in the bucket membership/userdns (schema version 3). It lets the
// membership index hold only the users some group lists: when a group comes to list a DN, the
// user there is found in the file, inside the transaction that commits the group's change,
// instead of in a map of every user kept in memory (at 1,000,000 users that map and its
// strings were two thirds of the daemon's heap).
//
// It is derived data. Commit keeps it in step with the id map, in the same transaction; Load
// checks it against the id map at every start and repairs what is missing (a file migrated
// from version 2 starts empty). A key it holds is only a hint: resolveUser confirms it with
// the id map, so a stale key can never put a user in scope.

// directoryIDMap is the change reader's id map (capture's default IDMapName).
const directoryIDMap = "directory"

func userDNBucket(tx *state.Tx) (*state.Bucket, error) {
	return tx.Bucket(state.BucketMembership, state.BucketUserDNs)
}

// noteUserDNs updates the DN index for a batch's changes, before the membership index
// resolves anything in it.
func noteUserDNs(tx *state.Tx, batch []capture.Change) error {
	var b *state.Bucket
	for _, ch := range batch {
		gone := ch.Kind == ldapstore.EventDelete || ch.Entry == nil
		isUser := ch.Object != capture.ObjectGroup && !gone
		var n string
		if isUser {
			n = normDN(ch.DN)
		}
		wasUser := ch.Prev != nil && ch.Prev.Kind == string(capture.ObjectUser)
		var was string
		if wasUser {
			was = normDN(ch.Prev.DN)
		}
		if (!wasUser || was == n) && !isUser {
			continue
		}
		if b == nil {
			var err error
			if b, err = userDNBucket(tx); err != nil {
				return err
			}
		}
		id := []byte(ch.ID)
		if wasUser && was != n {
			// Only the id's own key: another user may hold that DN now.
			if bytes.Equal(b.Get([]byte(was)), id) {
				if err := b.Delete([]byte(was)); err != nil {
					return fmt.Errorf("outbound: DN index: %w", err)
				}
			}
		}
		if isUser && !bytes.Equal(b.Get([]byte(n)), id) {
			if err := b.PutCounted([]byte(n), id); err != nil {
				return fmt.Errorf("outbound: DN index: %w", err)
			}
		}
	}
	return nil
}

// resolveUser returns the resolver of the membership index for a transaction: the DN index's
// key, confirmed by the id map (the id is a user there, at that DN).
func resolveUser(tx *state.Tx) (resolver, error) {
	b, err := userDNBucket(tx)
	if err != nil {
		return nil, err
	}
	ids, err := tx.IDMap(directoryIDMap)
	if err != nil {
		return nil, err
	}
	return func(ndn string) (string, bool, error) { return holderOf(ids, b, ndn) }, nil
}

// holderOf returns the id the DN index holds at ndn when the id map confirms it: a user
// there, at that DN. ok is false when the index holds no id or one the map does not confirm
// (a stale key).
func holderOf(ids *state.IDMap, b *state.Bucket, ndn string) (id string, ok bool, err error) {
	v := b.Get([]byte(ndn))
	if v == nil {
		return "", false, nil
	}
	id = string(v)
	rec, ok, err := ids.Get(id)
	if err != nil {
		return "", false, err
	}
	if !ok || rec.Kind != string(capture.ObjectUser) || normDN(rec.DN) != ndn {
		return "", false, nil
	}
	return id, true, nil
}

// repairChunk bounds the DN index entries one repair transaction writes: a million users
// migrated from version 2 are indexed in transactions of this many, not in one that would
// hold them all in memory until its commit.
var repairChunk = 20_000

// repairUserDNs writes the DN index entries the id map's users lack (no key, or a stale one),
// starting at id from, in transactions of repairChunk entries; it returns how many it wrote.
func (e *Engine) repairUserDNs(from string) (int, error) {
	written := 0
	for from != "" {
		next := ""
		err := e.o.State.Update(func(tx *state.Tx) error {
			ids, err := tx.IDMap(directoryIDMap)
			if err != nil {
				return err
			}
			b, err := userDNBucket(tx)
			if err != nil {
				return err
			}
			n := 0
			return ids.ForEachFrom(from, func(id string, r state.IDEntry) (bool, error) {
				if n == repairChunk {
					next = id
					return false, nil
				}
				n++
				if r.Kind != string(capture.ObjectUser) {
					return true, nil
				}
				n := normDN(r.DN)
				if bytes.Equal(b.Get([]byte(n)), []byte(id)) {
					return true, nil
				}
				// A key another user of the map holds is kept: two ids at one DN (an entry
				// deleted and made again, the old id not yet confirmed gone) are left as
				// Commit wrote them, the later one.
				if _, held, err := holderOf(ids, b, n); err != nil || held {
					return err == nil, err
				}
				written++
				return true, b.PutCounted([]byte(n), []byte(id))
			})
		})
		if err != nil {
			return written, fmt.Errorf("outbound: repairing the DN index: %w", err)
		}
		from = next
	}
	return written, nil
}
