package leadspace

import "encoding/json"

// Address of a company, as mapped from the profile or returned by Leadspace.
type Address struct {
	Street     string
	City       string
	State      string
	PostalCode string
	Country    string
}

// CompanyInput is exactly what leaves for Leadspace: the mapped fields and
// nothing else. Empty fields are not sent.
type CompanyInput struct {
	Name    string
	Website string
	Address *Address
}

// Request is one record to enrich. ExternalID is echoed back by Leadspace and
// is how bulk results are matched to records, so it must be unique within a
// bulk; it is not an idempotency key.
type Request struct {
	ExternalID string
	Company    CompanyInput
}

// The wire shapes below follow the v4 field names (leadspace-api.md §2).
// UNCERTAIN(leadspace-api.md §2): v3 is expected to ignore the v4-only
// address keys (street, postalcode); only name and website are confirmed.

type wireAddress struct {
	Street     string `json:"street,omitempty"`
	City       string `json:"city,omitempty"`
	State      string `json:"state,omitempty"`
	PostalCode string `json:"postalcode,omitempty"`
	Country    string `json:"country,omitempty"`
}

type wireCompany struct {
	Name    string       `json:"name,omitempty"`
	Website string       `json:"website,omitempty"`
	Address *wireAddress `json:"address,omitempty"`
}

type wireRecord struct {
	Company    wireCompany `json:"company"`
	ExternalID string      `json:"external_id,omitempty"`
}

type wireBulk struct {
	Data []wireRecord `json:"data"`
}

func (r Request) wire() wireRecord {
	w := wireRecord{
		ExternalID: r.ExternalID,
		Company:    wireCompany{Name: r.Company.Name, Website: r.Company.Website},
	}
	if a := r.Company.Address; a != nil && *a != (Address{}) {
		w.Company.Address = &wireAddress{
			Street: a.Street, City: a.City, State: a.State, PostalCode: a.PostalCode, Country: a.Country,
		}
	}
	return w
}

func singleBody(r Request) ([]byte, error) { return json.Marshal(r.wire()) }

func bulkBody(reqs []Request) ([]byte, error) {
	b := wireBulk{Data: make([]wireRecord, len(reqs))}
	for i, r := range reqs {
		b.Data[i] = r.wire()
	}
	return json.Marshal(b)
}

// probeRequest is the harmless company Verify sends to check credentials.
var probeRequest = Request{
	ExternalID: "leadspace-enricher-verify",
	Company:    CompanyInput{Name: "Leadspace", Website: "leadspace.com"},
}
