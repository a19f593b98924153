package hostbed

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// TestAgentFailoverAcrossHosts is the agent failover of the hardening issue
// across real hosts: three servers, agent n1 given only s1, agent n2 given
// s2 and s3, each with a greeter container, and a client on a host of its
// own calling steadily. Then, one at a time and each for longer than the
// heartbeat TTL: n1's only server is killed (and restarted), n1 is cut off
// from s1 by nft rules while s1 lives on (the case 127.0.0.1 cannot show),
// and the leader is paused. Throughout both nodes stay ready, no call fails
// and no container restarts.
func TestAgentFailoverAcrossHosts(t *testing.T) {
	b := newBed(t)
	ctx := context.Background()
	const ttl = 5 * time.Second
	c, err := NewCluster(b, ClusterConfig{BinDir: bins(t), Token: testToken, HeartbeatTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartServers(ctx, 3); err != nil {
		t.Fatal(err)
	}
	s1, s2, s3 := c.Servers[0], c.Servers[1], c.Servers[2]
	n1, err := c.StartAgent(ctx, "n1", s1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartAgent(ctx, "n2", s2, s3); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.API().Services().Declare(ctx, "greeter", "1.0.0", api.VersionRequest{Clients: ">= 1.0, < 2.0"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n1", "n2"} {
		if _, err := c.Greeter(ctx, "g-"+n, n, "1.0.0"); err != nil {
			t.Fatal(err)
		}
	}
	if err := poll(ctx, 30*time.Second, "both containers to run", func() bool {
		cts, _, err := c.API().Containers().List(ctx, "", nil)
		running := 0
		for _, ct := range cts {
			if err == nil && ct.Status != nil && ct.Status.State == api.ContainerRunning {
				running++
			}
		}
		return running == 2
	}); err != nil {
		t.Fatal(err)
	}

	// Watch the nodes from the control host.
	stop := make(chan struct{})
	var (
		mu       sync.Mutex
		notReady []string
		polls    int
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			qctx, cancel := context.WithTimeout(ctx, time.Second)
			nodes, meta, err := c.API().Nodes().List(qctx, &api.QueryOptions{AllowStale: true})
			cancel()
			if err != nil || !meta.KnownLeader {
				continue
			}
			mu.Lock()
			polls++
			for _, n := range nodes {
				if n.Status != api.NodeReady {
					notReady = append(notReady, fmt.Sprintf("%s %s at %s", n.ID, n.Status, time.Now().Format(time.StampMilli)))
				}
			}
			mu.Unlock()
		}
	}()
	client, calls, err := c.StartClient("c1", "web", ClientVersion, 20)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	start := time.Now()
	hold := ttl + 3*time.Second

	t.Log("1. kill s1, n1's only server")
	s1.Proc.Kill()
	time.Sleep(hold)
	if err := s1.Proc.Start(); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, 30*time.Second, "convergence after s1's restart", func() bool { return c.Converged(ctx) == nil }); err != nil {
		t.Fatal(err)
	}

	t.Log("2. cut n1 off from s1, both ways, s1 alive")
	if err := b.Split([]*Host{n1.Host}, []*Host{s1.Host}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(hold)
	if err := b.Heal(); err != nil {
		t.Fatal(err)
	}

	t.Log("3. pause the leader")
	leader := c.Leader(ctx)
	if leader == nil {
		t.Fatal("no leader before the pause")
	}
	if err := leader.Proc.Pause(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(hold)
	if err := leader.Proc.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, 30*time.Second, "convergence after the pause", func() bool { return c.Converged(ctx) == nil }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	client.Stop(5 * time.Second)
	close(stop)
	wg.Wait()

	recs, err := ReadCalls(calls)
	if err != nil {
		t.Log(err)
	}
	s := &Summary{}
	s.CheckCalls("c1", recs, map[string]string{"1.0.0": ">= 1.0, < 2.0"}, nil)
	if err := s.CheckContainers(ctx, c); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d calls (%d ok, %d failed) from %s on; %d polls of the nodes, %d not ready; %d restarts",
		s.Calls, s.CallsOK, s.CallsFailed, start.Format(time.StampMilli), polls, len(notReady), s.Restarts)
	if s.CallsOK < 300 || polls < 50 {
		t.Fatalf("too little seen: %d calls ok, %d polls", s.CallsOK, polls)
	}
	if s.CallsFailed+s.WrongAnswers > 0 {
		t.Errorf("failed calls %d, wrong answers %d: %v %v", s.CallsFailed, s.WrongAnswers, s.FailedSamples, s.WrongSamples)
	}
	if len(notReady) > 0 {
		t.Errorf("a node was not ready: %v", notReady[:min(len(notReady), 10)])
	}
	if s.Restarts > 0 {
		t.Errorf("containers restarted: %v", s.RestartedContainers)
	}
}
