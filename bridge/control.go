package bridge

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge/capture"
	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/bridge/outbound"
	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/targets"
)

// The control socket lets the CLI (status, deadletter, sync, plan, state backup) work with a
// running daemon, which holds the state file: the file is never opened by two processes at
// once. It is a Unix socket in the state directory, mode 0600 (the directory is 0700), so
// only the service user and root reach it.
//
// Protocol: HTTP/1.1 over the socket, JSON bodies.
//
//	GET  /v1/status                          Status (as the admin /status)
//	GET  /v1/deadletters?provisioner=NAME    []outbound.DeadLetterView
//	POST /v1/deadletters/retry               DeadLetterRequest → DeadLetterResult
//	POST /v1/deadletters/drop                DeadLetterRequest → DeadLetterResult
//	POST /v1/sync                            SyncRequest → a stream of SyncEvent, one JSON per line
//	POST /v1/plan                            PlanRequest → []outbound.Plan
//	GET  /v1/backup                          the state file (a consistent hot copy)
//
// Errors are non-2xx answers with {"error": "..."}.

// ControlSocket is the socket's name inside the state directory.
const ControlSocket = "control.sock"

// maxSocketPath bounds a Unix socket's path: sun_path holds 108 bytes on Linux and 104 on
// the BSDs, terminating NUL included.
const maxSocketPath = 104

// ErrNoDaemon means no daemon answers on the control socket.
var ErrNoDaemon = errors.New("no running scimbridge daemon")

// DeadLetterRequest names dead letters of one provisioner (all when IDs is empty and All).
type DeadLetterRequest struct {
	Provisioner string   `json:"provisioner"`
	IDs         []string `json:"ids,omitempty"`
}

// DeadLetterResult lists the dead letters acted on.
type DeadLetterResult struct {
	IDs []string `json:"ids"`
}

// PlanRequest asks what a full sync would do.
type PlanRequest struct {
	// Config, when set, is a configuration file whose provisioners are planned instead of
	// the running ones (what a new configuration would do).
	Config       string   `json:"config,omitempty"`
	Provisioners []string `json:"provisioners,omitempty"`
	// NoTarget skips listing the targets (adoptions are then unknown).
	NoTarget bool `json:"no_target,omitempty"`
}

type controlServer struct {
	srv    *http.Server
	path   string
	served chan struct{} // closed when Serve has returned
}

// Close stops the server (requests in flight get 5s) and returns once it has.
func (c *controlServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.srv.Shutdown(ctx)
	if err != nil {
		_ = c.srv.Close()
	}
	<-c.served
	_ = os.Remove(c.path)
	return err
}

// serveControl listens on the control socket. A stale socket (a daemon that was killed) is
// replaced; a live one cannot exist, since the state file is locked by its daemon.
func (pv *provisioning) serveControl(b *Bridge, dir string) (*controlServer, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Status(r.Context()))
	})
	mux.HandleFunc("GET /v1/deadletters", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("provisioner")
		if err := pv.knownProvisioner(name); err != nil {
			writeError(w, http.StatusNotFound, err)
			return
		}
		l, err := pv.engine.DeadLetters(name)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		if l == nil {
			l = []outbound.DeadLetterView{}
		}
		writeJSON(w, http.StatusOK, l)
	})
	dlAction := func(fn func(name string, ids []string) ([]string, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var req DeadLetterRequest
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
			if err := pv.knownProvisioner(req.Provisioner); err != nil {
				writeError(w, http.StatusNotFound, err)
				return
			}
			ids, err := fn(req.Provisioner, req.IDs)
			if err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
			writeJSON(w, http.StatusOK, DeadLetterResult{IDs: ids})
		}
	}
	mux.HandleFunc("POST /v1/deadletters/retry", dlAction(pv.engine.Replay))
	mux.HandleFunc("POST /v1/deadletters/drop", dlAction(pv.engine.Drop))
	mux.HandleFunc("POST /v1/sync", func(w http.ResponseWriter, r *http.Request) {
		var req SyncRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(w)
		fl, _ := w.(http.Flusher)
		emit := func(ev SyncEvent) {
			_ = enc.Encode(ev)
			if fl != nil {
				fl.Flush()
			}
		}
		if err := pv.sync(r.Context(), req, emit); err != nil {
			emit(SyncEvent{Done: true, Error: err.Error()})
		}
	})
	mux.HandleFunc("POST /v1/plan", func(w http.ResponseWriter, r *http.Request) {
		var req PlanRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		plans, err := pv.plan(r.Context(), req, b.logger)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, plans)
	})
	mux.HandleFunc("GET /v1/backup", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if _, err := pv.db.Backup(w); err != nil {
			pv.log.Error().Err(err).Msg("backup over the control socket failed")
		}
	})
	var handler http.Handler = mux
	if pv.gate != nil {
		// A sync or a plan asked here sends target requests too: fenced like the engine's.
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mux.ServeHTTP(w, r.WithContext(targets.WithGate(r.Context(), pv.gate)))
		})
	}
	return listenControl(dir, handler, pv.log)
}

// listenControl serves handler on the control socket in dir.
func listenControl(dir string, handler http.Handler, log zerolog.Logger) (*controlServer, error) {
	path := filepath.Join(dir, ControlSocket)
	if len(path) >= maxSocketPath {
		return nil, fmt.Errorf("bridge: control socket path %s is too long for a Unix socket (%d bytes): use a shorter state.dir", path, len(path))
	}
	l, err := listenUnix(dir, path)
	if err != nil {
		return nil, fmt.Errorf("bridge: control socket: %w", err)
	}
	ctl := &controlServer{srv: &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}, path: path, served: make(chan struct{})}
	go func() {
		defer close(ctl.served)
		if err := ctl.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("control socket failed")
		}
	}()
	log.Info().Str("socket", path).Msg("control socket listening")
	return ctl, nil
}

// listenUnix listens on a Unix socket at path with mode 0600. The socket is created in a
// fresh directory of mode 0700 inside dir, given its mode there, and only then renamed into
// place: nobody else can connect in between, and the process umask (shared by every
// goroutine creating files) stays as it is.
func listenUnix(dir, path string) (net.Listener, error) {
	tmp, err := os.MkdirTemp(dir, ".c")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	staged := filepath.Join(tmp, "s")
	if len(staged) >= maxSocketPath {
		return nil, fmt.Errorf("path %s is too long for a Unix socket (%d bytes): use a shorter state.dir", path, len(staged))
	}
	l, err := net.Listen("unix", staged)
	if err != nil {
		return nil, err
	}
	// The socket file moves: closing the listener must not unlink a path it no longer has.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(staged, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	_ = os.Remove(path) // a stale socket of a daemon that was killed
	if err := os.Rename(staged, path); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (pv *provisioning) knownProvisioner(name string) error {
	if name == "" {
		return errors.New("provisioner: required")
	}
	var names []string
	for _, p := range pv.engine.Provisioners() {
		if p.Name() == name {
			return nil
		}
		names = append(names, p.Name())
	}
	// A provisioner removed from the configuration still has its dead letters in the file.
	var inFile bool
	_ = pv.db.View(func(tx *state.Tx) error {
		found, err := tx.OutboxNames()
		inFile = err == nil && slices.Contains(found, name)
		return nil
	})
	if inFile {
		return nil
	}
	return fmt.Errorf("no provisioner %q (configured: %s)", name, joinNames(names))
}

// plan computes a PlanRequest with the running engine's state and directory.
func (pv *provisioning) plan(ctx context.Context, req PlanRequest, logger zerolog.Logger) ([]outbound.Plan, error) {
	pv.mu.Lock()
	cfg := pv.cfg
	pv.mu.Unlock()
	if req.Config != "" {
		c, err := LoadConfig(req.Config)
		if err != nil {
			return nil, err
		}
		if err := c.LoadSecrets(); err != nil {
			return nil, err
		}
		if err := ApplyDialect(ctx, c, pv.store); err != nil {
			return nil, err
		}
		cfg = c
	}
	return planWith(ctx, pv.engine, cfg, req, logger)
}

func planWith(ctx context.Context, engine *outbound.Engine, cfg *config.Config, req PlanRequest, logger zerolog.Logger) ([]outbound.Plan, error) {
	specs, opened, err := Specs(cfg, logger.Level(zerolog.WarnLevel))
	if err != nil {
		return nil, err
	}
	defer closeTargets(opened)
	var chosen []outbound.Spec
	for _, s := range specs {
		if len(req.Provisioners) == 0 || slices.Contains(req.Provisioners, s.Name) {
			chosen = append(chosen, s)
		}
	}
	for _, n := range req.Provisioners {
		if !slices.ContainsFunc(specs, func(s outbound.Spec) bool { return s.Name == n }) {
			return nil, fmt.Errorf("no provisioner %q in the configuration", n)
		}
	}
	if len(chosen) == 0 {
		return nil, errors.New("no provisioner is configured")
	}
	return engine.Plan(ctx, chosen, !req.NoTarget)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// Control is a client of a running daemon's control socket.
type Control struct {
	hc *http.Client
}

// DialControl connects to the daemon whose state directory is dir. It returns ErrNoDaemon
// when none answers there.
func DialControl(ctx context.Context, dir string) (*Control, error) {
	path := filepath.Join(dir, ControlSocket)
	if _, err := os.Stat(path); err != nil {
		return nil, ErrNoDaemon
	}
	c := &Control{hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(pctx, http.MethodGet, "http://scimbridge/v1/status", nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, ErrNoDaemon
		}
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	drain(resp)
	return c, nil
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}

func (c *Control) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = strings.NewReader(string(raw))
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://scimbridge"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	defer drain(resp)
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		return errors.New(e.Error)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Status is the daemon's status.
func (c *Control) Status(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &raw)
	return raw, err
}

// DeadLetters lists a provisioner's dead letters.
func (c *Control) DeadLetters(ctx context.Context, prov string) ([]outbound.DeadLetterView, error) {
	var out []outbound.DeadLetterView
	err := c.do(ctx, http.MethodGet, "/v1/deadletters?provisioner="+url.QueryEscape(prov), nil, &out)
	return out, err
}

// Retry replays dead letters; Drop deletes them.
func (c *Control) Retry(ctx context.Context, prov string, ids []string) ([]string, error) {
	var out DeadLetterResult
	err := c.do(ctx, http.MethodPost, "/v1/deadletters/retry", DeadLetterRequest{Provisioner: prov, IDs: ids}, &out)
	return out.IDs, err
}

// Drop deletes dead letters.
func (c *Control) Drop(ctx context.Context, prov string, ids []string) ([]string, error) {
	var out DeadLetterResult
	err := c.do(ctx, http.MethodPost, "/v1/deadletters/drop", DeadLetterRequest{Provisioner: prov, IDs: ids}, &out)
	return out.IDs, err
}

// Plan asks the daemon for a plan.
func (c *Control) Plan(ctx context.Context, req PlanRequest) ([]outbound.Plan, error) {
	var out []outbound.Plan
	err := c.do(ctx, http.MethodPost, "/v1/plan", req, &out)
	return out, err
}

// Sync runs a sync in the daemon, calling fn for each progress event.
func (c *Control) Sync(ctx context.Context, r SyncRequest, fn func(SyncEvent)) error {
	raw, _ := json.Marshal(r)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://scimbridge/v1/sync", strings.NewReader(string(raw)))
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	defer drain(resp)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ev SyncEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("control socket: %w", err)
		}
		fn(ev)
		if ev.Done {
			if ev.Error != "" {
				return errors.New(ev.Error)
			}
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	return errors.New("control socket: the daemon ended the sync without a result")
}

// Backup streams a hot copy of the state file to w.
func (c *Control) Backup(ctx context.Context, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://scimbridge/v1/backup", nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("control socket: backup: %s", resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// Offline operations: the same commands when no daemon runs, on the state file itself.

// OpenStateOffline opens the state file for a command (read-only unless write).
func OpenStateOffline(cfg *config.Config, write bool) (*state.DB, error) {
	if write {
		return state.OpenWith(cfg.State.Dir, state.Options{Timeout: time.Second})
	}
	return state.OpenWith(cfg.State.Dir, state.Options{ReadOnly: true, Timeout: time.Second})
}

// OfflineStatus reads the status from the state file.
func OfflineStatus(cfg *config.Config) (ProvisioningStatus, error) {
	db, err := OpenStateOffline(cfg, false)
	if err != nil {
		return ProvisioningStatus{}, err
	}
	defer db.Close()
	var st ProvisioningStatus
	err = db.View(func(tx *state.Tx) error {
		var names []string
		for _, p := range cfg.Provisioners {
			names = append(names, p.Name)
		}
		var err error
		if st.Provisioners, err = outbound.StoredStatus(tx, names); err != nil {
			return err
		}
		configured := map[string]bool{}
		for _, n := range names {
			configured[n] = true
		}
		for i := range st.Provisioners {
			for _, p := range cfg.Provisioners {
				if p.Name == st.Provisioners[i].Name {
					st.Provisioners[i].Type = p.Type
					st.Provisioners[i].Breaker.MaxDeletes = p.MaxDeletes
				}
			}
		}
		if c, ok, err := tx.Cursor("changes"); err == nil && ok {
			st.Changes = &ChangesStatus{Cursor: c.Value, CursorUpdated: c.Updated}
		}
		return nil
	})
	return st, err
}

// OfflineDeadLetters lists, replays or drops dead letters in the state file. action is
// "list", "retry" or "drop".
func OfflineDeadLetters(cfg *config.Config, action, prov string, ids []string) ([]outbound.DeadLetterView, []string, error) {
	db, err := OpenStateOffline(cfg, action != "list")
	if err != nil {
		return nil, nil, err
	}
	defer db.Close()
	var (
		list []outbound.DeadLetterView
		done []string
	)
	if action == "list" {
		err = db.View(func(tx *state.Tx) error {
			list, err = outbound.ListDeadLetters(tx, prov)
			return err
		})
		return list, nil, err
	}
	err = db.Update(func(tx *state.Tx) error {
		var err error
		if action == "retry" {
			done, err = outbound.ReplayDeadLetters(tx, prov, ids)
		} else {
			done, err = outbound.DropDeadLetters(tx, prov, ids)
		}
		return err
	})
	return nil, done, err
}

// OfflinePlan plans with the state file opened read-only.
func OfflinePlan(ctx context.Context, cfg *config.Config, store *ldapstore.Store, req PlanRequest, logger zerolog.Logger) ([]outbound.Plan, error) {
	db, err := state.OpenWith(cfg.State.Dir, state.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, os.ErrNotExist) {
		// Nothing pushed yet: plan against an empty state in a scratch file.
		tmp, terr := os.MkdirTemp("", "scimbridge-plan-")
		if terr != nil {
			return nil, terr
		}
		defer os.RemoveAll(tmp)
		db, err = state.Open(tmp)
	}
	if err != nil {
		return nil, err
	}
	defer db.Close()
	d, err := store.Dialect(ctx)
	if err != nil {
		return nil, err
	}
	engine, err := outbound.New(outbound.Options{
		State: db, Directory: store, Scope: capture.ScopeFromConfig(cfg, d), MemberAttribute: cfg.LDAP.Groups.MemberAttribute, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	return planWith(ctx, engine, cfg, req, logger)
}

// OfflineSync runs a sync in this process: the same reader, engine and workers as the
// daemon, until nothing more can be delivered now.
func OfflineSync(ctx context.Context, cfg *config.Config, store *ldapstore.Store, req SyncRequest, logger zerolog.Logger, emit func(SyncEvent)) error {
	if cfg.HA.Enabled {
		// Outside the daemon there is no lease: pushing here could overlap the leader's.
		return errors.New("bridge: with [ha] enabled, sync runs in the daemon holding the lease: start scimbridge serve (or run sync on the leader's host)")
	}
	pv, err := newProvisioning(ctx, cfg, store, logger, nil, nil)
	if err != nil {
		return err
	}
	specs, opened, err := Specs(cfg, logger)
	if err != nil {
		pv.close()
		return err
	}
	pv.targets, pv.specs = opened, specs
	if err := pv.engine.Load(ctx); err != nil {
		pv.close()
		return err
	}
	if _, err := pv.engine.SetProvisioners(specs); err != nil {
		pv.close()
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	pv.engine.Start(runCtx)
	err = pv.sync(runCtx, req, emit)
	cancel()
	pv.engine.Wait()
	pv.join()
	pv.close()
	return err
}

// OfflineBackup copies the state file when no daemon runs.
func OfflineBackup(cfg *config.Config, out string) error {
	db, err := OpenStateOffline(cfg, false)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.BackupFile(out)
}
