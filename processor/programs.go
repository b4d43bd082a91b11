package processor

import (
	"sync"

	"github.com/enrichment/leadspace-enricher/processor/controlplane"
)

// programs knows which Leadspace program each tenant's records call (its
// credentials' key) and each program's share of the window: what a record
// is accounted against before it is decoded (the key says the tenant).
type programs struct {
	control  *controlplane.Table
	enricher Enricher
	fallback int      // the share of a program not seen yet: the whole window
	known    sync.Map // credentials key -> Program
}

// of is the program a tenant's records call now, "" if none.
func (ps *programs) of(tenant string) string {
	key, ok := ps.control.ProgramOf(tenant)
	if !ok {
		return ""
	}
	if _, known := ps.known.Load(key); !known {
		if permit, denial := ps.control.Gate(tenant); denial == nil {
			ps.known.Store(key, ps.enricher.Program(permit.Credentials))
		}
	}
	return key
}

// program is the Leadspace program of a permit, from the ones known (a
// lookup; the Enricher would hash the credentials again).
func (ps *programs) program(permit controlplane.Permit) Program {
	if prog, ok := ps.known.Load(permit.Program); ok && permit.Program != "" {
		return prog.(Program)
	}
	prog := ps.enricher.Program(permit.Credentials)
	ps.known.Store(prog.Key(), prog)
	return prog
}

// share is a program's share of the window: what it needs in flight to
// keep its admitted rate busy with full bulks.
func (ps *programs) share(program string) int {
	if prog, ok := ps.known.Load(program); ok {
		return prog.(Program).Capacity()
	}
	return ps.fallback
}
