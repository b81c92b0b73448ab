package ocsp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// A closing connection waits at most lingerTime, and reads at most
// lingerBytes, for what the client is still sending.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 4 << 20
)

// FastServer is the responder's own fasthttp listener (see NewFastServer).
type FastServer struct {
	*fasthttp.Server
}

// Serve accepts connections on ln. A connection the server closes while
// the client is still sending (a body over the limit) is closed the way
// RFC 9112 section 9.6 asks: the server's half first, then the client's
// unread bytes are drained, bounded by lingerTime and lingerBytes. Closing
// both halves at once would make the kernel reset the connection and the
// client could lose the 413 answer written just before.
func (s *FastServer) Serve(ln net.Listener) error {
	return s.Server.Serve(lingerListener{ln})
}

type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return lingerConn{c}, nil
}

type lingerConn struct{ net.Conn }

func (c lingerConn) Close() error {
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil || c.Conn.SetReadDeadline(time.Now().Add(lingerTime)) != nil {
		return c.Conn.Close()
	}
	// The client sees end of stream and closes; a read error or the
	// deadline ends the drain as well.
	_, _ = io.CopyN(io.Discard, c.Conn, lingerBytes)
	return c.Conn.Close()
}

// debugLogger hands fasthttp's messages (mostly clients that went away
// mid-request) to slog at debug level.
type debugLogger struct{ l *slog.Logger }

func (d debugLogger) Printf(format string, args ...any) {
	d.l.Log(context.Background(), slog.LevelDebug, "ocsp listener: "+fmt.Sprintf(format, args...))
}
