// chisel 1.10's client handshake on Go's own SSH stack (golang.org/x/crypto/ssh) and gorilla/websocket:
// the same identification line, config JSON, ping and channel handling (a chisel-style pipe that
// closes both ends at the first EOF). Used by go-chisel.int.spec.ts; built with GOPATH packages
// from Debian (golang-golang-x-crypto-dev, golang-github-gorilla-websocket-dev).
package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/ssh"
)

type Remote struct {
	LocalHost, LocalPort, LocalProto    string
	RemoteHost, RemotePort, RemoteProto string
	Socks, Reverse, Stdio               bool
}
type Remotes []*Remote
type Config struct {
	Version string
	Remotes
}

type wsConn struct {
	*websocket.Conn
	buf []byte
}

func (c *wsConn) Read(p []byte) (int, error) {
	if len(c.buf) == 0 {
		_, m, err := c.Conn.ReadMessage()
		if err != nil {
			return 0, err
		}
		c.buf = m
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}
func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.Conn.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
func (c *wsConn) SetDeadline(t time.Time) error {
	c.Conn.SetReadDeadline(t)
	return c.Conn.SetWriteDeadline(t)
}

func main() {
	server, fp, user, pass, lport, rhost, rport := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6], os.Args[7]
	d := websocket.Dialer{Subprotocols: []string{"chisel-v3"}, HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.Dial("ws://"+server, nil)
	if err != nil {
		fmt.Println("WS-ERROR:", err)
		os.Exit(2)
	}
	conn := &wsConn{Conn: ws}
	cfg := &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.Password(pass)}, ClientVersion: "SSH-chisel-v3-client", Timeout: 10 * time.Second,
		HostKeyCallback: func(h string, r net.Addr, k ssh.PublicKey) error {
			s := sha256.Sum256(k.Marshal())
			if got := base64.StdEncoding.EncodeToString(s[:]); got != fp {
				return fmt.Errorf("Invalid fingerprint (%s)", got)
			}
			return nil
		},
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, "", cfg)
	if err != nil {
		fmt.Println("HANDSHAKE-ERROR:", err)
		os.Exit(3)
	}
	fmt.Println("SERVER-VERSION:", string(sc.ServerVersion()))
	b, _ := json.Marshal(Config{Version: "1.10.1", Remotes: Remotes{{LocalHost: "0.0.0.0", LocalPort: lport, LocalProto: "tcp", RemoteHost: rhost, RemotePort: rport, RemoteProto: "tcp", Reverse: true}}})
	_, configerr, err := sc.SendRequest("config", true, b)
	if err != nil {
		fmt.Println("CONFIG-ERROR:", err)
		os.Exit(4)
	}
	if len(configerr) > 0 {
		fmt.Println("CONFIG-REFUSED:", string(configerr))
		os.Exit(5)
	}
	go func() {
		for r := range reqs {
			if r.Type == "ping" {
				r.Reply(true, []byte("pong"))
			}
		}
	}()
	ok, pong, err := sc.SendRequest("ping", true, nil)
	fmt.Println("PING:", ok, string(pong), err)
	fmt.Println("CONNECTED")
	for ch := range chans {
		go func(ch ssh.NewChannel) {
			target := string(ch.ExtraData())
			fmt.Println("CHANNEL:", ch.ChannelType(), target)
			dst, err := net.Dial("tcp", target)
			if err != nil {
				ch.Reject(ssh.ConnectionFailed, err.Error())
				return
			}
			s, rq, err := ch.Accept()
			if err != nil {
				dst.Close()
				return
			}
			go ssh.DiscardRequests(rq)
			var once sync.Once
			closeBoth := func() { s.Close(); dst.Close() }
			go func() { io.Copy(s, dst); once.Do(closeBoth) }()
			io.Copy(dst, s)
			once.Do(closeBoth)
		}(ch)
	}
	fmt.Println("DISCONNECTED")
}
