// Package leadspace is the client the stream processor uses to enrich company
// profiles at Leadspace (https://apigw.leadspace.com).
//
// A Client holds one Program per Leadspace program (credentials). Each Program
// owns what the API meters per program: an adaptive rate limiter (30
// transactions per second on the published tier, split across a fleet with
// Client.SetShare), a circuit breaker, and a queue of submitted records
// with one dispatcher goroutine that turns it into transactions.
//
// Program.Submit queues a record and returns at once; its done callback gets
// an Outcome: the Result or an *Error with a Class and a stable Reason, plus
// what it cost (Sent: requests Leadspace accepted, each may spend a credit;
// Attempts; first and last failure). Program.Enrich is Submit made blocking.
//
// How records travel:
//   - When the limiter grants a transaction, the dispatcher sends one bulk of
//     up to BulkMaxRecords if at least BulkThreshold records are ready, else
//     a single call for the oldest. Records gather while the token is
//     awaited, so a backlog fills bulks and light traffic gets single calls.
//   - Goroutines grow with transactions in flight (one per single call, one
//     per bulk and its polls), never with records queued.
//   - A bulk is polled first when the program's learnt turnaround says its
//     results are likely ready, then at growing steps. Whether polls count
//     against the TPS is uncertain; Config.FreePolls picks the case.
//   - An outage is backpressure, not failure: retryable failures (5xx,
//     timeouts, resets, unreadable answers, bulk code 1100, lost bulks) put
//     the record back into the queue with full-jitter backoff, an open
//     breaker holds it there, and only GiveUpAfter (15 min) since its first
//     failure ends it with ReasonRetriesExhausted. 429 slows the limiter
//     (AIMD) and retries. 400 and code 1200 are ClassInput; 401, 403 and a
//     token that cannot be a bearer token are ClassAuth; 427 is ClassCredits.
//   - A record whose context ended is never put in a new request; one
//     inside a request has its answer dropped (Sent still counts it).
//   - Capacity says how many records a program wants queued or in flight to
//     keep its rate busy with full bulks (Little's law on measured polls
//     per bulk and cycle time); Pending says how many it has.
//
// Requests run on the client's context, not a caller's: one caller giving up
// never aborts a bulk others share, and every answer that arrives is booked,
// so the Sent of all outcomes adds up to what Leadspace received.
//
// Facts about the API rest on research notes (docs/leadspace.md) that
// were never checked against the live service; code that depends on an
// uncertain fact is marked UNCERTAIN with the section it comes from.
//
// The subpackage simulator is a deterministic local fake of the API for tests
// and development.
package leadspace
