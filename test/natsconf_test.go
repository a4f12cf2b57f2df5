package test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/visionmesh/vision/pkg/job"
)

// The orchestrator's reply inbox prefix (docs/DESIGN-NOTES.md); nats.conf
// lets the orchestrator subscribe under it and nowhere else.
const natsConfOrchInbox = "_INBOX.orch"

// A long job: 60 s of work with a heartbeat every 250 ms is 240 heartbeats
// and then the result, all on one reply subject.
const natsConfLongJobHeartbeats = int(60 * time.Second / (250 * time.Millisecond))

func natsConfSubject(task string) string { return job.Subject(job.DefaultPrefix, task) }

// dialNatsConfOrchestrator connects as the orchestrator, with its inbox prefix.
func dialNatsConfOrchestrator(tb testing.TB, url string, pw map[string]string) (*nats.Conn, *natsConfErrs) {
	tb.Helper()
	return dialNatsConf(tb, url, "orchestrator", pw["orchestrator"], nats.CustomInboxPrefix(natsConfOrchInbox))
}

// serveNatsConfTask answers every job of task received by nc (in the task's
// queue group) with "done:<task>".
func serveNatsConfTask(tb testing.TB, nc *nats.Conn, task string) {
	tb.Helper()
	_, err := nc.QueueSubscribe(natsConfSubject(task), task, func(m *nats.Msg) {
		if err := m.Respond([]byte("done:" + task)); err != nil {
			tb.Errorf("respond to %s job: %v", task, err)
		}
	})
	if err != nil {
		tb.Fatalf("queue subscribe %s: %v", natsConfSubject(task), err)
	}
	flushNatsConf(tb, nc)
}

// TestNatsConfLoads checks the settings of nats.conf that the rest of the
// system relies on: the users and where their passwords come from, no
// anonymous user, the payload limit, localhost-only monitoring and reply
// permissions wide enough for a long job's heartbeats.
func TestNatsConfLoads(t *testing.T) {
	pw := setNatsConfSecrets(t)
	opts, err := server.ProcessConfigFile(natsConfPath)
	if err != nil {
		t.Fatalf("load %s: %v", natsConfPath, err)
	}

	if opts.NoAuthUser != "" {
		t.Errorf("no_auth_user = %q, want none (anonymous clients must be refused)", opts.NoAuthUser)
	}
	if got, want := opts.Port, 4222; got != want {
		t.Errorf("port = %d, want %d", got, want)
	}
	if got, want := opts.HTTPHost, "127.0.0.1"; got != want {
		t.Errorf("monitoring host = %q, want %q (localhost only)", got, want)
	}
	if got, want := opts.HTTPPort, 8222; got != want {
		t.Errorf("monitoring port = %d, want %d", got, want)
	}
	// The orchestrator accepts 7 MiB bodies; the message also carries headers.
	if min := int32(7<<20 + 64<<10); opts.MaxPayload < min {
		t.Errorf("max_payload = %d, want at least %d (7 MiB image + headers)", opts.MaxPayload, min)
	}
	if int64(opts.MaxPayload) > opts.MaxPending {
		t.Errorf("max_payload %d > max_pending %d", opts.MaxPayload, opts.MaxPending)
	}
	if opts.ServerName == "" {
		t.Errorf("server_name is empty")
	}
	if opts.TLSConfig != nil {
		t.Errorf("TLS is enabled, want it commented out by default")
	}

	users := make(map[string]*server.User)
	for _, u := range opts.Users {
		users[u.Username] = u
	}
	if got, want := len(users), len(natsConfSecretEnv); got != want {
		t.Errorf("%d users, want %d", got, want)
	}
	for name, env := range natsConfSecretEnv {
		u := users[name]
		if u == nil {
			t.Errorf("user %s missing", name)
			continue
		}
		if u.Password != pw[name] {
			t.Errorf("user %s: password is not taken from $%s", name, env)
		}
		if u.Permissions == nil {
			t.Errorf("user %s has no permissions, so it may do anything", name)
			continue
		}
		if !strings.HasPrefix(name, "worker-") {
			continue
		}
		r := u.Permissions.Response
		if r == nil {
			t.Errorf("user %s: no allow_responses, workers could not reply", name)
			continue
		}
		if r.MaxMsgs >= 0 && r.MaxMsgs < natsConfLongJobHeartbeats+1 {
			t.Errorf("user %s: allow_responses max %d, want unlimited (<0) or at least %d", name, r.MaxMsgs, natsConfLongJobHeartbeats+1)
		}
		if r.Expires <= time.Minute {
			t.Errorf("user %s: allow_responses expires %v, want finite and longer than a 60s job", name, r.Expires)
		}
	}
}

// TestNatsConfMissingSecretFailsToLoad proves the server refuses to start
// when a password variable is not set, rather than running without it.
func TestNatsConfMissingSecretFailsToLoad(t *testing.T) {
	for user, env := range natsConfSecretEnv {
		t.Run(user, func(t *testing.T) {
			setNatsConfSecrets(t)
			os.Unsetenv(env) // Setenv's cleanup restores it.
			_, err := server.ProcessConfigFile(natsConfPath)
			if err == nil {
				t.Fatalf("nats.conf loaded without $%s", env)
			}
			if !strings.Contains(err.Error(), env) {
				t.Errorf("got error %v, want one naming %s", err, env)
			}
		})
	}
}

// TestNatsConfRefusesAnonymous proves a client without credentials is
// refused: nats.conf has no no_auth_user.
func TestNatsConfRefusesAnonymous(t *testing.T) {
	url, _ := newNatsConfServer(t)
	nc, err := nats.Connect(url, nats.NoReconnect(), nats.Timeout(5*time.Second))
	if err == nil {
		nc.Close()
		t.Fatal("anonymous connection accepted")
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("got %v, want %v", err, nats.ErrAuthorization)
	}
}

// TestNatsConfRefusesWrongPassword proves each user needs its own password.
func TestNatsConfRefusesWrongPassword(t *testing.T) {
	url, pw := newNatsConfServer(t)
	cases := []struct {
		name, user, password string
	}{
		{"wrong password", "orchestrator", "not-the-password"},
		{"empty password", "worker-vehicle", ""},
		{"another role's password", "worker-vehicle", pw["worker-plate"]},
		{"worker password for orchestrator", "orchestrator", pw["worker-face"]},
		{"unknown user", "admin", pw["orchestrator"]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(url, nats.UserInfo(tc.user, tc.password), nats.NoReconnect(), nats.Timeout(5*time.Second))
			if err == nil {
				nc.Close()
				t.Fatalf("%s accepted", tc.user)
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("got %v, want %v", err, nats.ErrAuthorization)
			}
		})
	}
}

// TestNatsConfWorkerRepliesManyTimes proves worker-vehicle receives a job in
// its queue group and may send a long job's worth of heartbeats and then the
// result to the one reply subject, and that all of them reach the
// orchestrator (allow_responses is not limited to one reply).
func TestNatsConfWorkerRepliesManyTimes(t *testing.T) {
	url, pw := newNatsConfServer(t)
	w, werrs := dialNatsConf(t, url, "worker-vehicle", pw["worker-vehicle"])
	orch, _ := dialNatsConfOrchestrator(t, url, pw)

	const jobID = "5f0c6f6e-0d1e-4b7e-9a51-3f1c2b9b7a10"
	_, err := w.QueueSubscribe(natsConfSubject("vehicle"), "vehicle", func(m *nats.Msg) {
		if got := m.Header.Get(job.HeaderID); got != jobID {
			t.Errorf("job id %q, want %q", got, jobID)
		}
		for range natsConfLongJobHeartbeats {
			hb := &nats.Msg{Header: nats.Header{}}
			hb.Header.Set(job.HeaderID, jobID)
			hb.Header.Set(job.HeaderStatus, job.StatusWorking)
			if err := m.RespondMsg(hb); err != nil {
				t.Errorf("heartbeat: %v", err)
				return
			}
		}
		res := &nats.Msg{Header: nats.Header{}, Data: []byte(`{"vehicles":[]}`)}
		res.Header.Set(job.HeaderID, jobID)
		res.Header.Set(job.HeaderWorker, "w1")
		if err := m.RespondMsg(res); err != nil {
			t.Errorf("result: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("queue subscribe: %v", err)
	}
	flushNatsConf(t, w)

	inbox := orch.NewInbox()
	if !strings.HasPrefix(inbox, natsConfOrchInbox+".") {
		t.Fatalf("inbox %q does not use prefix %s", inbox, natsConfOrchInbox)
	}
	replies, err := orch.SubscribeSync(inbox)
	if err != nil {
		t.Fatalf("subscribe %s: %v", inbox, err)
	}
	req := nats.NewMsg(natsConfSubject("vehicle"))
	req.Reply = inbox
	req.Header.Set(job.HeaderID, jobID)
	req.Header.Set(job.HeaderHeartbeat, "250ms")
	req.Data = []byte("jpeg bytes")
	if err := orch.PublishMsg(req); err != nil {
		t.Fatalf("publish job: %v", err)
	}

	for i := range natsConfLongJobHeartbeats {
		m, err := replies.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("heartbeat %d: %v (worker errors: %v)", i+1, err, werrs.all())
		}
		if got := m.Header.Get(job.HeaderStatus); got != job.StatusWorking {
			t.Fatalf("reply %d: %s %q, want %q", i+1, job.HeaderStatus, got, job.StatusWorking)
		}
	}
	m, err := replies.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("result after %d heartbeats: %v (worker errors: %v)", natsConfLongJobHeartbeats, err, werrs.all())
	}
	if got, want := m.Header.Get(job.HeaderWorker), "w1"; got != want {
		t.Errorf("result %s = %q, want %q", job.HeaderWorker, got, want)
	}
	if got, want := string(m.Data), `{"vehicles":[]}`; got != want {
		t.Errorf("result body %s, want %s", got, want)
	}
	if errs := werrs.all(); len(errs) > 0 {
		t.Errorf("worker errors: %v", errs)
	}
}

// TestNatsConfWorkerSubscribeDenied proves worker-vehicle can subscribe to
// nothing but its own task subject in its own queue group (and its
// discovery subjects): every other subscription is refused with a
// permissions violation, and a message published on it does not arrive.
func TestNatsConfWorkerSubscribeDenied(t *testing.T) {
	cases := []struct {
		name, subject, queue string
		// publish, when set, is a subject the orchestrator publishes to
		// that the refused subscription would have received.
		publish string
	}{
		{name: "another task", subject: natsConfSubject("plate"), queue: "plate", publish: natsConfSubject("plate")},
		{name: "another task outside a queue group", subject: natsConfSubject("face"), publish: natsConfSubject("face")},
		{name: "own task without queue group", subject: natsConfSubject("vehicle")},
		{name: "own task in another queue group", subject: natsConfSubject("vehicle"), queue: "plate"},
		{name: "every task", subject: "vision.task.>", queue: "vehicle", publish: natsConfSubject("plate")},
		{name: "another service's discovery", subject: "$SRV.PING.plate", publish: "$SRV.PING.plate"},
		{name: "orchestrator replies", subject: natsConfOrchInbox + ".>"},
		{name: "everything", subject: ">", publish: natsConfSubject("plate")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A server per case: a closed connection's queue subscription
			// must not linger into the next case and take its messages.
			url, pw := newNatsConfServer(t)
			orch, _ := dialNatsConfOrchestrator(t, url, pw)
			w, werrs := dialNatsConf(t, url, "worker-vehicle", pw["worker-vehicle"])

			own, err := w.QueueSubscribeSync(natsConfSubject("vehicle"), "vehicle")
			if err != nil {
				t.Fatalf("own queue subscription: %v", err)
			}
			var denied *nats.Subscription
			if tc.queue == "" {
				denied, err = w.SubscribeSync(tc.subject)
			} else {
				denied, err = w.QueueSubscribeSync(tc.subject, tc.queue)
			}
			if err != nil {
				// The client does not know the permissions; the server
				// answers the SUB with -ERR.
				t.Fatalf("subscribe: %v", err)
			}
			flushNatsConf(t, w)
			eventually(t, 5*time.Second, func() error { return werrs.violation("Subscription", tc.subject) })
			if err := w.LastError(); !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("LastError() = %v, want %v", err, nats.ErrPermissionViolation)
			}

			// Messages from one publisher reach a client in order: once
			// the worker has the marker on its own subject, anything
			// delivered to the refused subscription would be there too.
			if tc.publish != "" {
				if err := orch.Publish(tc.publish, []byte("job")); err != nil {
					t.Fatalf("publish %s: %v", tc.publish, err)
				}
			}
			if err := orch.Publish(natsConfSubject("vehicle"), []byte("marker")); err != nil {
				t.Fatalf("publish marker: %v", err)
			}
			m, err := own.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("own subscription: %v", err)
			}
			if got, want := string(m.Data), "marker"; got != want {
				t.Errorf("own subscription got %q, want %q", got, want)
			}
			if n, _, _ := denied.Pending(); n != 0 {
				t.Errorf("refused subscription %s received %d messages, want 0", tc.subject, n)
			}
		})
	}
}

// TestNatsConfWorkerCannotPublish proves a worker publishes nothing but
// replies: it cannot inject jobs for any task, nor write to an orchestrator
// reply subject it was not given.
func TestNatsConfWorkerCannotPublish(t *testing.T) {
	for _, task := range []string{"vehicle", "plate", "face"} {
		t.Run("job for "+task, func(t *testing.T) {
			url, pw := newNatsConfServer(t)
			orch, _ := dialNatsConfOrchestrator(t, url, pw)
			w, werrs := dialNatsConf(t, url, "worker-vehicle", pw["worker-vehicle"])
			// The real worker of task watches its subject.
			observer, _ := dialNatsConf(t, url, "worker-"+task, pw["worker-"+task])
			jobs, err := observer.QueueSubscribeSync(natsConfSubject(task), task)
			if err != nil {
				t.Fatalf("observer subscribe: %v", err)
			}
			flushNatsConf(t, observer)

			if err := w.Publish(natsConfSubject(task), []byte("forged job")); err != nil {
				t.Fatalf("publish: %v", err)
			}
			// After the round trip the server has handled (and refused) the
			// publish; had it been delivered, it would precede the marker.
			flushNatsConf(t, w)
			eventually(t, 5*time.Second, func() error { return werrs.violation("Publish", natsConfSubject(task)) })
			if err := w.LastError(); !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("LastError() = %v, want %v", err, nats.ErrPermissionViolation)
			}
			if err := orch.Publish(natsConfSubject(task), []byte("marker")); err != nil {
				t.Fatalf("publish marker: %v", err)
			}
			m, err := jobs.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("observer: %v", err)
			}
			if got, want := string(m.Data), "marker"; got != want {
				t.Errorf("observer got %q first, want %q", got, want)
			}
		})
	}

	t.Run("reply subject it was not given", func(t *testing.T) {
		url, pw := newNatsConfServer(t)
		orch, _ := dialNatsConfOrchestrator(t, url, pw)
		w, werrs := dialNatsConf(t, url, "worker-vehicle", pw["worker-vehicle"])
		all, err := orch.SubscribeSync(natsConfOrchInbox + ".>")
		if err != nil {
			t.Fatalf("orchestrator subscribe: %v", err)
		}
		flushNatsConf(t, orch)

		forged := natsConfOrchInbox + ".forged.1"
		if err := w.Publish(forged, []byte(`{"vehicles":["forged"]}`)); err != nil {
			t.Fatalf("publish: %v", err)
		}
		flushNatsConf(t, w)
		eventually(t, 5*time.Second, func() error { return werrs.violation("Publish", forged) })

		// A real job, answered by the same connection: its reply is the
		// first thing the orchestrator may see.
		serveNatsConfTask(t, w, "vehicle")
		reply := orch.NewInbox()
		if err := orch.PublishRequest(natsConfSubject("vehicle"), reply, []byte("jpeg")); err != nil {
			t.Fatalf("publish job: %v", err)
		}
		m, err := all.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("reply: %v", err)
		}
		if m.Subject != reply {
			t.Errorf("orchestrator got %s %q first, want the reply on %s", m.Subject, m.Data, reply)
		}
	})
}

// TestNatsConfOrchestratorRequestsEveryTask proves the orchestrator can
// publish a job to every task subject with a reply subject under its inbox
// prefix and receive the worker's answer, each task served by its own
// worker user.
func TestNatsConfOrchestratorRequestsEveryTask(t *testing.T) {
	url, pw := newNatsConfServer(t)
	orch, oerrs := dialNatsConfOrchestrator(t, url, pw)
	for _, task := range []string{"vehicle", "plate", "face"} {
		t.Run(task, func(t *testing.T) {
			w, werrs := dialNatsConf(t, url, "worker-"+task, pw["worker-"+task])
			serveNatsConfTask(t, w, task)
			m, err := orch.Request(natsConfSubject(task), []byte("jpeg"), 5*time.Second)
			if err != nil {
				t.Fatalf("request: %v (orchestrator errors %v, worker errors %v)", err, oerrs.all(), werrs.all())
			}
			if got, want := string(m.Data), "done:"+task; got != want {
				t.Errorf("reply %q, want %q", got, want)
			}
			if !strings.HasPrefix(m.Subject, natsConfOrchInbox+".") {
				t.Errorf("reply arrived on %s, want under %s", m.Subject, natsConfOrchInbox)
			}
		})
	}
	if errs := oerrs.all(); len(errs) > 0 {
		t.Errorf("orchestrator errors: %v", errs)
	}
}

// TestNatsConfOrchestratorSubscribeDenied proves the orchestrator cannot
// watch or take jobs, nor listen outside its own inbox prefix.
func TestNatsConfOrchestratorSubscribeDenied(t *testing.T) {
	cases := []struct{ name, subject, queue string }{
		{name: "every task", subject: "vision.task.>"},
		{name: "one task", subject: natsConfSubject("vehicle")},
		{name: "a task's queue group", subject: natsConfSubject("vehicle"), queue: "vehicle"},
		{name: "default inbox prefix", subject: "_INBOX.>"},
		{name: "discovery requests", subject: "$SRV.>"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url, pw := newNatsConfServer(t)
			orch, oerrs := dialNatsConfOrchestrator(t, url, pw)
			w, _ := dialNatsConf(t, url, "worker-vehicle", pw["worker-vehicle"])
			serveNatsConfTask(t, w, "vehicle")

			var denied *nats.Subscription
			var err error
			if tc.queue == "" {
				denied, err = orch.SubscribeSync(tc.subject)
			} else {
				denied, err = orch.QueueSubscribeSync(tc.subject, tc.queue)
			}
			if err != nil {
				t.Fatalf("subscribe: %v", err)
			}
			flushNatsConf(t, orch)
			eventually(t, 5*time.Second, func() error { return oerrs.violation("Subscription", tc.subject) })
			if err := orch.LastError(); !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("LastError() = %v, want %v", err, nats.ErrPermissionViolation)
			}

			// The job and its reply would both reach the refused
			// subscription before the reply reaches Request.
			m, err := orch.Request(natsConfSubject("vehicle"), []byte("jpeg"), 5*time.Second)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			if got, want := string(m.Data), "done:vehicle"; got != want {
				t.Errorf("reply %q, want %q", got, want)
			}
			if n, _, _ := denied.Pending(); n != 0 {
				t.Errorf("refused subscription %s received %d messages, want 0", tc.subject, n)
			}
		})
	}
}

// TestNatsConfOrchestratorPublishDenied proves the orchestrator publishes
// only jobs and discovery requests.
func TestNatsConfOrchestratorPublishDenied(t *testing.T) {
	url, pw := newNatsConfServer(t)
	orch, oerrs := dialNatsConfOrchestrator(t, url, pw)
	for _, subject := range []string{"vision.result.vehicle", natsConfOrchInbox + ".x.y", "$SYS.REQ.SERVER.PING"} {
		t.Run(subject, func(t *testing.T) {
			if err := orch.Publish(subject, []byte("x")); err != nil {
				t.Fatalf("publish: %v", err)
			}
			flushNatsConf(t, orch)
			eventually(t, 5*time.Second, func() error { return oerrs.violation("Publish", subject) })
		})
	}
}

// TestNatsConfMicroDiscovery proves a worker built on nats.go micro runs as
// worker-vehicle (every subscription micro makes is allowed) and that the
// orchestrator can discover it through $SRV.PING/INFO/STATS and send it
// jobs.
func TestNatsConfMicroDiscovery(t *testing.T) {
	url, pw := newNatsConfServer(t)
	w, werrs := dialNatsConf(t, url, "worker-vehicle", pw["worker-vehicle"])
	svc, err := micro.AddService(w, micro.Config{
		Name:        "vehicle",
		Version:     "1.0.0",
		Description: "natsconf test worker",
	})
	if err != nil {
		t.Fatalf("add service: %v", err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	err = svc.AddEndpoint("analyze", micro.HandlerFunc(func(r micro.Request) {
		_ = r.Respond([]byte("done:vehicle"))
	}), micro.WithEndpointSubject(natsConfSubject("vehicle")), micro.WithEndpointQueueGroup("vehicle"))
	if err != nil {
		t.Fatalf("add endpoint: %v", err)
	}
	// The server answers a refused SUB with -ERR before the PONG.
	flushNatsConf(t, w)
	if err := w.LastError(); err != nil {
		t.Fatalf("micro service as worker-vehicle: %v", err)
	}
	id := svc.Info().ID

	orch, oerrs := dialNatsConfOrchestrator(t, url, pw)
	for _, subject := range []string{"$SRV.PING", "$SRV.PING.vehicle", "$SRV.PING.vehicle." + id, "$SRV.INFO.vehicle", "$SRV.STATS.vehicle"} {
		t.Run(subject, func(t *testing.T) {
			m, err := orch.Request(subject, nil, 5*time.Second)
			if err != nil {
				t.Fatalf("request: %v (orchestrator errors %v, worker errors %v)", err, oerrs.all(), werrs.all())
			}
			var info micro.Info
			if err := json.Unmarshal(m.Data, &info); err != nil {
				t.Fatalf("decode %s: %v", m.Data, err)
			}
			if info.Name != "vehicle" || info.ID != id {
				t.Errorf("got service %s/%s, want vehicle/%s", info.Name, info.ID, id)
			}
			if strings.HasPrefix(subject, "$SRV.INFO") {
				if len(info.Endpoints) != 1 {
					t.Fatalf("got %d endpoints, want 1", len(info.Endpoints))
				}
				ep := info.Endpoints[0]
				if ep.Subject != natsConfSubject("vehicle") || ep.QueueGroup != "vehicle" {
					t.Errorf("endpoint %s in group %s, want %s in group vehicle", ep.Subject, ep.QueueGroup, natsConfSubject("vehicle"))
				}
			}
		})
	}

	m, err := orch.Request(natsConfSubject("vehicle"), []byte("jpeg"), 5*time.Second)
	if err != nil {
		t.Fatalf("job: %v", err)
	}
	if got, want := string(m.Data), "done:vehicle"; got != want {
		t.Errorf("reply %q, want %q", got, want)
	}
	if errs := werrs.all(); len(errs) > 0 {
		t.Errorf("worker errors: %v", errs)
	}
}
