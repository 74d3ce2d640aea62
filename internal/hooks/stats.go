package hooks

// Stats returns a *durable.Runtime's live objects and open databases.
var Stats func(rt any) (live, openDatabases int64)
