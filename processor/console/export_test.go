package console

// TenantRoutePaths are the paths of every tenant route, under /t/{tenant}.
func TenantRoutePaths() []string {
	var out []string
	for _, r := range tenantRoutes(&Server{}) {
		out = append(out, r.Path)
	}
	return out
}

// OperatorRoutePaths are the paths of every operator route.
func OperatorRoutePaths() []string {
	var out []string
	for _, r := range operatorRoutes(&Server{}) {
		out = append(out, r.Path)
	}
	return out
}
