// Package wstest is a small WebSocket client for durable's tests and load
// tools: it speaks frames directly, so tests can see close codes, send
// what a browser would not (unmasked frames, oversize frames, bad UTF-8)
// and hold thousands of connections without a goroutine each.
package wstest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	gws "github.com/gobwas/ws"
)

// Client is one client connection. Its methods are not safe for
// concurrent use, except that one goroutine may read while another writes.
type Client struct {
	Conn net.Conn
	br   *bufio.Reader
}

// Dial opens a WebSocket to url (ws://host/path).
func Dial(ctx context.Context, url string) (*Client, error) {
	d := gws.Dialer{Timeout: 10 * time.Second}
	nc, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReaderSize(nc, 4096)
	}
	return &Client{Conn: nc, br: br}, nil
}

// DialStatus is Dial for a handshake expected to fail: it returns the HTTP
// status the server answered with.
func DialStatus(ctx context.Context, url string) (int, error) {
	d := gws.Dialer{Timeout: 10 * time.Second}
	nc, _, _, err := d.Dial(ctx, url)
	if err == nil {
		nc.Close()
		return http.StatusSwitchingProtocols, nil
	}
	var se gws.StatusError
	if errors.As(err, &se) {
		return int(se), nil
	}
	return 0, err
}

// CloseError is what Read returns when the server sent a close frame.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("closed by the server: %d %q", e.Code, e.Reason)
}

// Message is one data message.
type Message struct {
	Binary bool
	Data   []byte
}

// Read returns the next data message. Pings are answered, pongs skipped; a
// close frame is answered and returned as *CloseError.
func (c *Client) Read() (Message, error) {
	var frag []byte
	var fragOp gws.OpCode
	for {
		f, err := gws.ReadFrame(c.br)
		if err != nil {
			return Message{}, err
		}
		if f.Header.Masked {
			gws.Cipher(f.Payload, f.Header.Mask, 0)
		}
		switch f.Header.OpCode {
		case gws.OpPing:
			c.write(gws.NewPongFrame(f.Payload))
			continue
		case gws.OpPong:
			continue
		case gws.OpClose:
			code, reason := 1005, ""
			if len(f.Payload) >= 2 {
				sc, r := gws.ParseCloseFrameData(f.Payload)
				code, reason = int(sc), r
			}
			c.write(gws.NewCloseFrame(f.Payload[:min(len(f.Payload), 2)]))
			return Message{}, &CloseError{Code: code, Reason: reason}
		case gws.OpContinuation:
			frag = append(frag, f.Payload...)
		default:
			fragOp = f.Header.OpCode
			frag = append(frag[:0], f.Payload...)
		}
		if f.Header.Fin {
			return Message{Binary: fragOp == gws.OpBinary, Data: frag}, nil
		}
	}
}

// ReadText returns the next message, which must be text.
func (c *Client) ReadText() (string, error) {
	m, err := c.Read()
	if err != nil {
		return "", err
	}
	if m.Binary {
		return "", errors.New("wstest: a binary message where text was expected")
	}
	return string(m.Data), nil
}

// ReadTimeout is Read with a deadline.
func (c *Client) ReadTimeout(d time.Duration) (Message, error) {
	c.Conn.SetReadDeadline(time.Now().Add(d))
	defer c.Conn.SetReadDeadline(time.Time{})
	return c.Read()
}

// ExpectClose reads until the server's close frame and returns its code
// (1006 if the connection dropped without one).
func (c *Client) ExpectClose(d time.Duration) (int, string, error) {
	c.Conn.SetReadDeadline(time.Now().Add(d))
	defer c.Conn.SetReadDeadline(time.Time{})
	for {
		_, err := c.Read()
		var ce *CloseError
		switch {
		case errors.As(err, &ce):
			return ce.Code, ce.Reason, nil
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), isReset(err):
			return 1006, "", nil
		case err != nil:
			return 0, "", err
		}
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}

func (c *Client) write(f gws.Frame) error {
	return gws.WriteFrame(c.Conn, gws.MaskFrame(f))
}

// SendText sends a text message.
func (c *Client) SendText(s string) error { return c.write(gws.NewTextFrame([]byte(s))) }

// SendBinary sends a binary message.
func (c *Client) SendBinary(b []byte) error { return c.write(gws.NewBinaryFrame(b)) }

// SendFrame sends f as given (masked unless unmasked is set).
func (c *Client) SendFrame(f gws.Frame, unmasked bool) error {
	if unmasked {
		return gws.WriteFrame(c.Conn, f)
	}
	return c.write(f)
}

// Ping sends a ping.
func (c *Client) Ping(p []byte) error { return c.write(gws.NewPingFrame(p)) }

// Close sends a close frame with code and reason (code 0: no body).
func (c *Client) Close(code int, reason string) error {
	var body []byte
	if code != 0 {
		body = gws.NewCloseFrameBody(gws.StatusCode(code), reason)
	}
	return c.write(gws.NewCloseFrame(body))
}

// Drop closes the TCP connection without a close frame.
func (c *Client) Drop() error { return c.Conn.Close() }

// MustDial dials url for a test: it fails the test if the dial fails
// within 10 s, and drops the connection when the test ends.
func MustDial(t testing.TB, url string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := Dial(ctx, url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { cl.Drop() })
	return cl
}
