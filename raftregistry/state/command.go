package state

import (
	"encoding/json"
	"fmt"
	"time"
)

// CommandType is the first byte of a Raft log entry. New types are appended at
// the end, never renumbered.
type CommandType uint8

// IgnoreUnknownFlag marks a command type that a server which does not know it
// may skip instead of stopping. It is or-ed into the type byte.
const IgnoreUnknownFlag CommandType = 0x80

// The command types. Append only.
const (
	RegisterNodeType    CommandType = 1
	SetNodeStatusType   CommandType = 2
	PurgeNodeType       CommandType = 3
	DeclareVersionType  CommandType = 4
	RetireVersionType   CommandType = 5
	MarkRetiredType     CommandType = 6
	PutContainerType    CommandType = 7
	DeleteContainerType CommandType = 8
	ContainerStatusType CommandType = 9
	CreateTokenType     CommandType = 10
	DeleteTokenType     CommandType = 11
	SetServerType       CommandType = 12
	RemoveServerType    CommandType = 13
	PurgeVersionType    CommandType = 14
	PurgeServiceType    CommandType = 15
)

// Command is one change to the state store.
type Command interface {
	Type() CommandType
}

// RegisterNode creates or updates a node and marks it ready.
type RegisterNode struct {
	ID      string            `json:"id"`
	Address string            `json:"address"`
	Gateway string            `json:"gateway"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// SetNodeStatus changes a node's status (the leader's heartbeat TTLs).
type SetNodeStatus struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// PurgeNode removes a node and every container on it. With OnlyIfDown it
// refuses a node that is ready: its agent lives, and purging would take its
// containers out from under their calls (the HTTP API sets it unless
// ?force). It is a "only if" rather than a "force" flag so that entries
// written before it existed apply as they did.
type PurgeNode struct {
	ID         string `json:"id"`
	OnlyIfDown bool   `json:"only_if_down,omitempty"`
}

// DeclareVersion declares a service version, cancels its drain, or brings a
// retired one back. CAS, when set, is a check-and-set on the version's
// modify index; 0 means create only.
type DeclareVersion struct {
	Service     string  `json:"service"`
	Version     string  `json:"version"`
	Clients     string  `json:"clients"`
	Description string  `json:"description,omitempty"`
	CAS         *uint64 `json:"cas,omitempty"`
}

// RetireVersion starts draining a service version.
type RetireVersion struct {
	Service string    `json:"service"`
	Version string    `json:"version"`
	Now     time.Time `json:"now"`
}

// MarkRetired retires draining versions the leader found due. Each is retired
// only if its modify index is still the one the leader saw, so a drain that
// was cancelled in between is left alone.
type MarkRetired struct {
	Versions []RetireDue `json:"versions"`
	Now      time.Time   `json:"now"`
}

// PutContainer declares a container. CAS, when set, is a check-and-set on the
// container's modify index; 0 means create only.
type PutContainer struct {
	ID   string        `json:"id"`
	Spec ContainerSpec `json:"spec"`
	CAS  *uint64       `json:"cas,omitempty"`
}

// DeleteContainer marks a container deleted; its agent drains and stops it.
type DeleteContainer struct {
	ID string `json:"id"`
}

// SetContainerStatus records what an agent observed. Node is the reporting
// agent's node; it must be the container's.
type SetContainerStatus struct {
	ID     string          `json:"id"`
	Node   string          `json:"node"`
	Status ContainerStatus `json:"status"`
}

// CreateToken stores an ACL token.
type CreateToken struct {
	AccessorID  string `json:"accessor_id"`
	SecretHash  string `json:"secret_hash"`
	Role        string `json:"role"`
	Node        string `json:"node,omitempty"`
	Description string `json:"description,omitempty"`
}

// DeleteToken revokes an ACL token.
type DeleteToken struct {
	AccessorID string `json:"accessor_id"`
}

// SetServer records a registry server's HTTP address.
type SetServer struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
}

// RemoveServer forgets a registry server's HTTP address.
type RemoveServer struct {
	ID string `json:"id"`
}

// PurgeVersion removes a retired version that no container holds, so that
// a service's history does not grow for ever. It carries no
// IgnoreUnknownFlag: a server that skipped it would still accept containers
// naming the version, and diverge; upgrade every server before purging.
type PurgeVersion struct {
	Service string `json:"service"`
	Version string `json:"version"`
}

// PurgeService removes a service: every version of it, all of which must be
// retired and held by no container. Like PurgeVersion it must not be
// skipped.
type PurgeService struct {
	Service string `json:"service"`
}

func (*RegisterNode) Type() CommandType       { return RegisterNodeType }
func (*SetNodeStatus) Type() CommandType      { return SetNodeStatusType }
func (*PurgeNode) Type() CommandType          { return PurgeNodeType }
func (*DeclareVersion) Type() CommandType     { return DeclareVersionType }
func (*RetireVersion) Type() CommandType      { return RetireVersionType }
func (*MarkRetired) Type() CommandType        { return MarkRetiredType }
func (*PutContainer) Type() CommandType       { return PutContainerType }
func (*DeleteContainer) Type() CommandType    { return DeleteContainerType }
func (*SetContainerStatus) Type() CommandType { return ContainerStatusType }
func (*CreateToken) Type() CommandType        { return CreateTokenType }
func (*DeleteToken) Type() CommandType        { return DeleteTokenType }
func (*SetServer) Type() CommandType          { return SetServerType }
func (*RemoveServer) Type() CommandType       { return RemoveServerType }
func (*PurgeVersion) Type() CommandType       { return PurgeVersionType }
func (*PurgeService) Type() CommandType       { return PurgeServiceType }

// newCommand returns an empty command of type t, or nil when t is unknown.
func newCommand(t CommandType) Command {
	switch t {
	case RegisterNodeType:
		return &RegisterNode{}
	case SetNodeStatusType:
		return &SetNodeStatus{}
	case PurgeNodeType:
		return &PurgeNode{}
	case DeclareVersionType:
		return &DeclareVersion{}
	case RetireVersionType:
		return &RetireVersion{}
	case MarkRetiredType:
		return &MarkRetired{}
	case PutContainerType:
		return &PutContainer{}
	case DeleteContainerType:
		return &DeleteContainer{}
	case ContainerStatusType:
		return &SetContainerStatus{}
	case CreateTokenType:
		return &CreateToken{}
	case DeleteTokenType:
		return &DeleteToken{}
	case SetServerType:
		return &SetServer{}
	case RemoveServerType:
		return &RemoveServer{}
	case PurgeVersionType:
		return &PurgeVersion{}
	case PurgeServiceType:
		return &PurgeService{}
	}
	return nil
}

// Encode writes a command as its type byte followed by its JSON body.
func Encode(c Command) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", c, err)
	}
	buf := make([]byte, 0, len(body)+1)
	buf = append(buf, byte(c.Type()))
	return append(buf, body...), nil
}

// Decode reads a command written by Encode. For an unknown type carrying
// IgnoreUnknownFlag it returns (nil, nil): the entry is to be skipped. Any
// other entry it cannot read is an error.
func Decode(b []byte) (Command, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("decode command: empty entry")
	}
	t := CommandType(b[0])
	c := newCommand(t &^ IgnoreUnknownFlag)
	if c == nil {
		if t&IgnoreUnknownFlag != 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("decode command: unknown type %d", t)
	}
	if err := json.Unmarshal(b[1:], c); err != nil {
		return nil, fmt.Errorf("decode command type %d: %w", t, err)
	}
	return c, nil
}
