package mapping

// Kind is the kind of a SCIM resource: a user or a group.
type Kind string

// The resource kinds scimbridge provisions.
const (
	KindUser  Kind = "User"
	KindGroup Kind = "Group"
)

// OpType says what an outbound operation does on a target.
type OpType string

// The outbound operations. Create and Replace carry a whole Resource; Update carries Patch
// operations with only what changed; Disable is a PATCH of active=false; Delete removes the
// resource; Members adds and removes group members (target ids) in Patch.
const (
	OpCreate  OpType = "create"
	OpReplace OpType = "replace"
	OpUpdate  OpType = "update"
	OpDisable OpType = "disable"
	OpDelete  OpType = "delete"
	OpMembers OpType = "members"
)

// Op is one operation on a target, built by the planner from a directory entry and what was
// last pushed for it.
type Op struct {
	Kind Kind
	Type OpType
	// TargetID is the target's id for the resource; empty for OpCreate.
	TargetID string
	// MatchAttribute and MatchValue identify the resource on the target when TargetID is not
	// known yet (adoption, and the lookup that makes a POST safe to repeat).
	MatchAttribute string
	MatchValue     string
	// Resource is the full SCIM resource (JSON-shaped) for OpCreate and OpReplace.
	Resource map[string]any
	// Patch holds the SCIM PATCH operations for OpUpdate and OpMembers.
	Patch []PatchOp
}

// PatchOp is one SCIM PATCH operation (RFC 7644 §3.5.2).
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}
