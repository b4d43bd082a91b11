// Package leadspace is the client the stream processor uses to enrich company
// profiles at Leadspace (https://apigw.leadspace.com).
//
// A Client holds one Program per Leadspace program (credentials). Each Program
// owns the things the API meters per program: an adaptive rate limiter (30
// transactions per second on the published tier), a circuit breaker, and a
// batcher that switches from single calls to bulk submits when a backlog
// builds up. Program.Enrich is the one call the processor needs; it retries
// inside and returns errors that carry a Class and a stable Reason code.
//
// Facts about the API rest on research notes (shared/leadspace-api.md) that
// were never checked against the live service; code that depends on an
// uncertain fact is marked UNCERTAIN with the section it comes from.
//
// The subpackage simulator is a deterministic local fake of the API for tests
// and development.
package leadspace
