package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// Demo profiles look like what a unification service publishes for B2B
// accounts: a company name, often a website, sometimes a location, and
// attributes that must never leave for Leadspace (they are not mapped).
var (
	demoStems = []string{"Contoso", "Fabrikam", "Northwind", "Tailspin", "Litware", "Adventure Works", "Wingtip", "Proseware",
		"Lucerne", "Alpine Ski", "Blue Yonder", "Coho Winery", "Fourth Coffee", "Graphic Design", "Humongous", "Margie's Travel",
		"Trey Research", "Wide World", "Woodgrove", "Relecloud", "Bellows", "Datum", "Consolidated Messenger", "Nod Publishers",
		"School of Fine Art", "Southridge Video", "Tasmanian Traders", "VanArsdel", "Boreal Freight", "Kestrel Analytics"}
	demoSuffixes  = []string{"Inc", "Ltd", "GmbH", "LLC", "Group", "Corp", "AB", "Holdings", "Labs", "Partners"}
	demoLocations = []string{"Seattle, WA, US", "Austin, TX, US", "Stockholm, SE", "London, GB", "Berlin, DE", "Toronto, ON, CA",
		"Sydney, NSW, AU", "Boston, MA, US", "Amsterdam, NL", "Paris, FR", "Dublin, IE", "Madrid, ES"}
)

// Attribute names the demo mapping uses.
const (
	demoNameAttr     = "CompanyName"
	demoWebsiteAttr  = "Website"
	demoLocationAttr = "Location"
)

// demoProfile builds the i-th profile of a tenant. About one in forty has no
// company name (it must come out SKIPPED without a call).
func demoProfile(rng *rand.Rand, tenant string, i int, now time.Time) schemas.Profile {
	stem := demoStems[rng.IntN(len(demoStems))]
	name := fmt.Sprintf("%s %s %d", stem, demoSuffixes[rng.IntN(len(demoSuffixes))], i)
	domain := strings.ToLower(strings.NewReplacer(" ", "", "'", "").Replace(stem)) + fmt.Sprint(i) + ".com"
	attrs := map[string]string{
		demoNameAttr:    name,
		"AccountNumber": fmt.Sprintf("ACC-%06d", i),
		"PrimaryEmail":  "buyer@" + domain, // never mapped: must never reach Leadspace
	}
	if rng.IntN(10) < 8 {
		attrs[demoWebsiteAttr] = "https://www." + domain
	}
	if rng.IntN(10) < 6 {
		attrs[demoLocationAttr] = demoLocations[rng.IntN(len(demoLocations))]
	}
	if i%40 == 39 {
		attrs[demoNameAttr] = "  "
	}
	return schemas.Profile{EventID: fmt.Sprintf("%s-profile-%d-v1", tenant, i), TenantID: tenant, ProfileID: fmt.Sprintf("cust-%05d", i),
		Kind: "ACCOUNT", Attributes: attrs, UnifiedAt: now, Version: 1}
}

// demoBadEvents are values no decoder should accept, one of each kind of
// garbage a real topic sees.
func demoBadEvents(topic, tenant string, n int) []kafka.Message {
	kinds := [][]byte{
		[]byte(`{"tenant_id":"` + tenant + `","name":"json, not avro"}`),
		{0, 0, 0, 0x7f, 0x7f, 1, 2, 3},    // unknown schema id
		{0, 0, 0, 0, 1, 0xff, 0xff, 0xff}, // truncated avro
		{0xde, 0xad, 0xbe, 0xef},
		[]byte("plain text"),
	}
	out := make([]kafka.Message, n)
	for i := range out {
		out[i] = kafka.Message{Topic: topic, Key: []byte(fmt.Sprintf("%s/bad-%d", tenant, i)), Value: kinds[i%len(kinds)]}
	}
	return out
}
