module github.com/durable-go/durable

go 1.26.0

require (
	github.com/gobwas/ws v1.5.0
	github.com/ncruces/go-sqlite3 v0.37.0
	golang.org/x/sys v0.49.0
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/ncruces/go-sqlite3-wasm/v6 v6.5.35401 // indirect
	github.com/ncruces/julianday v1.0.0 // indirect
)
