package hooks

// Stats returns a *durable.Runtime's live objects and open databases.
var Stats func(rt any) (live, openDatabases int64)

// DisableMetrics makes a *durable.Runtime define its next namespaces
// without counters (no metrics, no usage): the benchmark of what counting
// costs compares against it.
var DisableMetrics func(rt any)
