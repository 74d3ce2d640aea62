package ws

import (
	"errors"
	"net/http"
	"strings"

	gws "github.com/gobwas/ws"
)

// CheckRequest reports whether r is a WebSocket handshake request the
// runtime can accept (RFC 6455 §4.2.1), with an error naming what is wrong.
func CheckRequest(r *http.Request) error {
	switch {
	case r.Method != http.MethodGet:
		return errors.New("a WebSocket handshake must use GET, not " + r.Method)
	case r.ProtoMajor != 1 || r.ProtoMinor < 1:
		return errors.New("a WebSocket handshake needs HTTP/1.1, not " + r.Proto)
	case !strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		return errors.New("the request does not ask for a WebSocket upgrade (Upgrade: websocket)")
	case !hasToken(r.Header.Values("Connection"), "upgrade"):
		return errors.New("the request lacks Connection: Upgrade")
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return errors.New("the request's Sec-WebSocket-Version is not 13")
	case len(r.Header.Get("Sec-WebSocket-Key")) != 24:
		return errors.New("the request's Sec-WebSocket-Key is missing or malformed")
	}
	return nil
}

func hasToken(values []string, token string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// Upgrade answers the handshake on w (101 Switching Protocols), with the
// headers in header (its Sec-WebSocket-Protocol chooses the subprotocol),
// and attaches the connection to c. On failure c is abandoned (its object
// gets a Closed event) and the error returned.
func (c *Conn) Upgrade(w http.ResponseWriter, r *http.Request, header http.Header) error {
	u := gws.HTTPUpgrader{Timeout: DefaultHandshakeLimit}
	if len(header) > 0 {
		extra := http.Header{}
		for k, v := range header {
			switch http.CanonicalHeaderKey(k) {
			case "Sec-Websocket-Protocol", "Sec-Websocket-Accept", "Sec-Websocket-Extensions",
				"Upgrade", "Connection", "Content-Length", "Content-Type", "Transfer-Encoding":
			default:
				extra[k] = v
			}
		}
		if len(extra) > 0 {
			u.Header = extra
		}
		if proto := header.Get("Sec-WebSocket-Protocol"); proto != "" {
			u.Protocol = func(p string) bool { return p == proto }
		}
	}
	nc, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		if nc != nil {
			nc.Close()
		}
		c.Abandon(err)
		return err
	}
	var pre []byte
	if n := rw.Reader.Buffered(); n > 0 {
		pre, _ = rw.Reader.Peek(n)
	}
	if err := c.Attach(nc, pre); err != nil {
		return err
	}
	return nil
}
