package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fastTarget is a minimal in-memory SCIM service provider for the benchmark: every operation
// is O(1) (userName and displayName are indexed), so that the measured rates are the bridge's
// and the HTTP stack's, not the test server's. (targettest.Server checks uniqueness by
// scanning every resource and records every request: right for tests, quadratic at 100k.)
type fastTarget struct {
	URL     string
	srv     *http.Server
	mu      sync.Mutex
	res     map[string]map[string]map[string]any // kind → id → resource
	byName  map[string]map[string]string         // kind → lower(name) → id
	seq     int
	creates atomic.Int64
	onPatch func(body []byte)
	// latency is added to every request, outside the lock: a SaaS API's service time.
	latency time.Duration
}

func newFastTarget(latency time.Duration) (*fastTarget, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ft := &fastTarget{
		latency: latency,
		res:     map[string]map[string]map[string]any{"Users": {}, "Groups": {}},
		byName:  map[string]map[string]string{"Users": {}, "Groups": {}},
	}
	ft.URL = "http://" + l.Addr().String() + "/scim/v2"
	ft.srv = &http.Server{Handler: http.HandlerFunc(ft.serve)}
	go func() { _ = ft.srv.Serve(l) }()
	return ft, nil
}

func (ft *fastTarget) Close() { _ = ft.srv.Close() }

func (ft *fastTarget) count(kind string) int {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return len(ft.res[kind])
}

var eqFilter = regexp.MustCompile(`^(\w+) eq "((?:[^"\\]|\\.)*)"$`)

func nameKey(kind string) string {
	if kind == "Groups" {
		return "displayName"
	}
	return "userName"
}

func (ft *fastTarget) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if ft.latency > 0 {
		time.Sleep(ft.latency)
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/scim/v2/"), "/")
	kind := parts[0]
	if kind != "Users" && kind != "Groups" {
		http.NotFound(w, r)
		return
	}
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/scim+json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	scimErr := func(status int, detail string) {
		reply(status, map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:Error"}, "status": strconv.Itoa(status), "detail": detail})
	}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	store, names := ft.res[kind], ft.byName[kind]
	switch {
	case r.Method == http.MethodPost && len(parts) == 1:
		var doc map[string]any
		if err := json.Unmarshal(body, &doc); err != nil {
			scimErr(400, err.Error())
			return
		}
		name := strings.ToLower(fmt.Sprint(doc[nameKey(kind)]))
		if _, taken := names[name]; taken {
			scimErr(409, "taken")
			return
		}
		ft.seq++
		id := strconv.Itoa(ft.seq)
		doc["id"] = id
		store[id], names[name] = doc, id
		ft.creates.Add(1)
		reply(201, doc)
	case r.Method == http.MethodGet && len(parts) == 1:
		var list []any
		if f := r.URL.Query().Get("filter"); f != "" {
			if m := eqFilter.FindStringSubmatch(f); m != nil {
				if id, ok := names[strings.ToLower(m[2])]; ok {
					list = append(list, store[id])
				}
			}
		} else {
			start, _ := strconv.Atoi(r.URL.Query().Get("startIndex"))
			n, _ := strconv.Atoi(r.URL.Query().Get("count"))
			start = max(start, 1)
			for i := start; i < start+n && i <= ft.seq; i++ {
				if res, ok := store[strconv.Itoa(i)]; ok {
					list = append(list, res)
				}
			}
		}
		total := len(list)
		if r.URL.Query().Get("filter") == "" {
			total = ft.seq
		}
		reply(200, map[string]any{
			"schemas":      []string{"urn:ietf:params:scim:api:messages:2.0:ListResponse"},
			"totalResults": total, "startIndex": 1, "itemsPerPage": len(list), "Resources": list,
		})
	case len(parts) == 2:
		res, ok := store[parts[1]]
		if !ok {
			scimErr(404, "not found")
			return
		}
		switch r.Method {
		case http.MethodGet:
			reply(200, res)
		case http.MethodDelete:
			delete(names, strings.ToLower(fmt.Sprint(res[nameKey(kind)])))
			delete(store, parts[1])
			w.WriteHeader(204)
		case http.MethodPut:
			var doc map[string]any
			_ = json.Unmarshal(body, &doc)
			doc["id"] = parts[1]
			store[parts[1]] = doc
			reply(200, doc)
		case http.MethodPatch:
			if ft.onPatch != nil {
				ft.onPatch(body)
			}
			var p struct {
				Operations []struct {
					Op, Path string
					Value    any
				}
			}
			_ = json.Unmarshal(body, &p)
			for _, op := range p.Operations {
				if !strings.ContainsAny(op.Path, "[.") && op.Path != "" && !strings.EqualFold(op.Op, "remove") {
					res[op.Path] = op.Value
				}
			}
			w.WriteHeader(204)
		default:
			scimErr(405, "method")
		}
	default:
		scimErr(404, "no such endpoint")
	}
}
