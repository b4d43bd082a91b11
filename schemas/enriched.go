package schemas

import (
	"context"
	"time"
)

// Outcomes of one profile's enrichment.
const (
	StatusEnriched   = "ENRICHED"
	StatusNotMatched = "NOT_MATCHED"
	StatusSkipped    = "SKIPPED"
)

// Address is a postal address, as sent to or returned by Leadspace.
type Address struct {
	Street     string `json:"street,omitempty"`
	City       string `json:"city,omitempty"`
	State      string `json:"state,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country,omitempty"`
}

// Sent is exactly what left for Leadspace for one profile.
type Sent struct {
	Name     string   `json:"name,omitempty"`
	Website  string   `json:"website,omitempty"`
	Location *Address `json:"location,omitempty"`
}

// Firmographics is Leadspace's company data.
type Firmographics struct {
	LeadspaceID    string   `json:"leadspace_company_id,omitempty"`
	Name           string   `json:"name,omitempty"`
	Website        string   `json:"website,omitempty"`
	Description    string   `json:"description,omitempty"`
	Industry       string   `json:"industry,omitempty"`
	SubIndustry    string   `json:"sub_industry,omitempty"`
	SIC            string   `json:"sic,omitempty"`
	SICDesc        string   `json:"sic_description,omitempty"`
	NAICS          string   `json:"naics,omitempty"`
	NAICSDesc      string   `json:"naics_description,omitempty"`
	Employees      *int64   `json:"employees,omitempty"`
	EmployeesRange string   `json:"employees_range,omitempty"`
	RevenueUSD     *int64   `json:"revenue_usd,omitempty"`
	RevenueRange   string   `json:"revenue_range,omitempty"`
	Address        *Address `json:"address,omitempty"`
	Phone          string   `json:"phone,omitempty"`
	LinkedInURL    string   `json:"linkedin_url,omitempty"`
	Ownership      string   `json:"ownership,omitempty"`
	Technologies   []string `json:"technologies,omitempty"`
}

// Lineage ties an output to the input it came from.
type Lineage struct {
	SourceTopic     string `json:"source_topic,omitempty"`
	SourcePartition int32  `json:"source_partition,omitempty"`
	SourceOffset    int64  `json:"source_offset,omitempty"`
	SourceEventID   string `json:"source_event_id,omitempty"`
	ProfileVersion  int64  `json:"profile_version,omitempty"`
}

// Enriched is an EnrichedCompany event.
type Enriched struct {
	EventID          string         `json:"event_id,omitempty"`
	EnrichmentID     string         `json:"enrichment_id,omitempty"`
	TenantID         string         `json:"tenant_id,omitempty"`
	ProfileID        string         `json:"profile_id,omitempty"`
	Status           string         `json:"status,omitempty"`
	SkipReason       string         `json:"skip_reason,omitempty"`
	Confidence       string         `json:"confidence,omitempty"`
	Sent             *Sent          `json:"sent,omitempty"`
	Company          *Firmographics `json:"company,omitempty"`
	InputFingerprint string         `json:"input_fingerprint,omitempty"`
	EnrichedAt       time.Time      `json:"enriched_at,omitempty"`
	Lineage          Lineage        `json:"lineage,omitempty"`
}

const ns = "com.enrichment.leadspace."

func addressNative(a *Address) map[string]any {
	if a == nil {
		return nil
	}
	return map[string]any{"street": a.Street, "city": a.City, "state": a.State, "postal_code": a.PostalCode, "country": a.Country}
}

// Native is the goavro form of e.
func (e Enriched) Native() map[string]any {
	var sent, company map[string]any
	if e.Sent != nil {
		sent = map[string]any{"name": e.Sent.Name, "website": optString(e.Sent.Website), "location": optRecord(ns+"Address", addressNative(e.Sent.Location))}
	}
	if f := e.Company; f != nil {
		techs := f.Technologies
		if techs == nil {
			techs = []string{}
		}
		company = map[string]any{
			"leadspace_company_id": f.LeadspaceID, "name": f.Name, "website": f.Website, "description": f.Description,
			"industry": f.Industry, "sub_industry": f.SubIndustry, "sic": f.SIC, "sic_description": f.SICDesc,
			"naics": f.NAICS, "naics_description": f.NAICSDesc, "employees": optLong(f.Employees),
			"employees_range": f.EmployeesRange, "revenue_usd": optLong(f.RevenueUSD), "revenue_range": f.RevenueRange,
			"address": optRecord(ns+"Address", addressNative(f.Address)), "phone": f.Phone, "linkedin_url": f.LinkedInURL,
			"ownership": f.Ownership, "technologies": stringsNative(techs),
		}
	}
	return map[string]any{
		"event_id": e.EventID, "enrichment_id": e.EnrichmentID, "provider": "leadspace",
		"tenant_id": e.TenantID, "profile_id": e.ProfileID, "status": e.Status,
		"skip_reason": optString(e.SkipReason), "confidence": optString(e.Confidence),
		"sent": optRecord(ns+"LeadspaceInput", sent), "company": optRecord(ns+"Firmographics", company),
		"input_fingerprint": e.InputFingerprint, "enriched_at": e.EnrichedAt,
		"lineage": map[string]any{
			"source_topic": e.Lineage.SourceTopic, "source_partition": e.Lineage.SourcePartition,
			"source_offset": e.Lineage.SourceOffset, "source_event_id": e.Lineage.SourceEventID,
			"profile_version": e.Lineage.ProfileVersion,
		},
	}
}

func decodeAddress(r *record) *Address {
	if r == nil {
		return nil
	}
	return &Address{Street: r.str("street"), City: r.str("city"), State: r.str("state"), PostalCode: r.str("postal_code"), Country: r.str("country")}
}

// DecodeEnriched decodes a framed EnrichedCompany value.
func (c *Codec) DecodeEnriched(ctx context.Context, value []byte) (Enriched, error) {
	m, err := c.Decode(ctx, EnrichedCompany, value)
	if err != nil {
		return Enriched{}, err
	}
	r := &record{m: m}
	e := Enriched{
		EventID: r.str("event_id"), EnrichmentID: r.str("enrichment_id"), TenantID: r.str("tenant_id"),
		ProfileID: r.str("profile_id"), Status: r.str("status"), SkipReason: r.str("skip_reason"),
		Confidence: r.str("confidence"), InputFingerprint: r.str("input_fingerprint"), EnrichedAt: r.time("enriched_at"),
	}
	if s := r.sub("sent"); s != nil {
		e.Sent = &Sent{Name: s.str("name"), Website: s.str("website"), Location: decodeAddress(s.sub("location"))}
	}
	if f := r.sub("company"); f != nil {
		e.Company = &Firmographics{
			LeadspaceID: f.str("leadspace_company_id"), Name: f.str("name"), Website: f.str("website"),
			Description: f.str("description"), Industry: f.str("industry"), SubIndustry: f.str("sub_industry"),
			SIC: f.str("sic"), SICDesc: f.str("sic_description"), NAICS: f.str("naics"), NAICSDesc: f.str("naics_description"),
			Employees: f.optLong("employees"), EmployeesRange: f.str("employees_range"),
			RevenueUSD: f.optLong("revenue_usd"), RevenueRange: f.str("revenue_range"), Address: decodeAddress(f.sub("address")),
			Phone: f.str("phone"), LinkedInURL: f.str("linkedin_url"), Ownership: f.str("ownership"), Technologies: f.strings("technologies"),
		}
	}
	if l := r.sub("lineage"); l != nil {
		e.Lineage = Lineage{SourceTopic: l.str("source_topic"), SourcePartition: int32(l.long("source_partition")),
			SourceOffset: l.long("source_offset"), SourceEventID: l.str("source_event_id"), ProfileVersion: l.long("profile_version")}
	}
	return e, r.err
}
