// Command xds-server is a small xDS control plane for mesh-xds's interop tests: Envoy's own
// go-control-plane (snapshot cache + ADS server, State-of-the-World and Delta) on 127.0.0.1,
// driven by a loopback HTTP interface.
//
// It listens on two ports (ephemeral, unless -xds names the ADS one) and prints them on its first
// stdout line:
//
//	xds=127.0.0.1:PORT http=127.0.0.1:PORT
//
// The HTTP interface:
//
//	POST /snapshot  {"node":"n","version":"1","clusters":[...],"endpoints":[...]} → 204
//	                builds CDS + EDS resources and sets them as the node's snapshot. An endpoint
//	                may be invalid on purpose (port 0, a duplicate, a bad address) to provoke a NACK.
//	                A cluster may carry slow start, zone-aware routing, circuit-breaker limits and
//	                a TLS transport socket with exact URI SAN matchers ("sans"), or a TLS socket
//	                whose typed_config does not decode ("tls_garbage"); an assignment may carry an
//	                overprovisioning factor. See clusterSpec and assignmentSpec.
//	GET  /nacks     → JSON list of the error_detail messages received (SotW and Delta), oldest first;
//	                with ?wait=N, once there are at least N (or after 30 s)
//	GET  /requests  → JSON counts of the discovery requests received, per stream kind
//
// With -tls-cert, -tls-key and -tls-ca (PEM files) the ADS port speaks mutual TLS: it presents the
// certificate chain and key, and requires and verifies a client certificate issued under one of the
// CA certificates (TLS 1.3, ALPN h2 through gRPC's TLS credentials). The HTTP interface stays
// plaintext.
//
// The program exits when its standard input closes, so a test harness that dies takes it along.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type clusterSpec struct {
	Name     string `json:"name"`
	LbPolicy string `json:"lb_policy"`
	// Outlier detection, when Consecutive5xx > 0.
	Consecutive5xx  uint32 `json:"consecutive_5xx"`
	MaxRequests     uint32 `json:"max_requests"`
	ConnectTimeoutS int64  `json:"connect_timeout_s"`
	// DEFAULT-priority limits besides max_requests, when > 0.
	MaxPendingRequests uint32 `json:"max_pending_requests"`
	MaxRetries         uint32 `json:"max_retries"`
	// Slow start (in the round-robin or least-request config, by lb_policy), when the window > 0.
	SlowStartWindowS int64   `json:"slow_start_window_s"`
	Aggression       float64 `json:"aggression"`
	MinWeightPercent float64 `json:"min_weight_percent"`
	// Zone-aware routing; min_cluster_size set when > 0.
	ZoneAware      bool   `json:"zone_aware"`
	MinClusterSize uint64 `json:"min_cluster_size"`
	// A TLS transport socket whose validation context matches these exact URI SANs.
	Sans []string `json:"sans"`
	// A TLS transport socket whose typed_config is not a valid UpstreamTlsContext.
	TLSGarbage bool `json:"tls_garbage"`
}

type endpointSpec struct {
	Addr     string `json:"addr"`
	Port     uint32 `json:"port"`
	Weight   uint32 `json:"weight"`
	Health   string `json:"health"`
	Priority uint32 `json:"priority"`
	Region   string `json:"region"`
	Zone     string `json:"zone"`
}

type assignmentSpec struct {
	Cluster   string         `json:"cluster"`
	Endpoints []endpointSpec `json:"endpoints"`
	// policy.overprovisioning_factor, when > 0.
	OverprovisioningFactor uint32 `json:"overprovisioning_factor"`
}

type snapshotSpec struct {
	Node      string           `json:"node"`
	Version   string           `json:"version"`
	Clusters  []clusterSpec    `json:"clusters"`
	Endpoints []assignmentSpec `json:"endpoints"`
}

type recorder struct {
	mu    sync.Mutex
	nacks []string
	sotw  int
	delta int
	// Closed and replaced at every NACK, so a GET /nacks?wait=N can block until N arrived.
	nacked chan struct{}
}

func (r *recorder) recordNack(message string) {
	r.nacks = append(r.nacks, message)
	close(r.nacked)
	r.nacked = make(chan struct{})
}

// waitNacks returns the NACK messages once there are at least n, or what there is after 30 s.
func (r *recorder) waitNacks(n int) []string {
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		if len(r.nacks) >= n {
			defer r.mu.Unlock()
			return append([]string{}, r.nacks...)
		}
		changed := r.nacked
		r.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			return append([]string{}, r.nacks...)
		}
	}
}

func (r *recorder) callbacks() serverv3.CallbackFuncs {
	return serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, req *discoveryv3.DiscoveryRequest) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.sotw++
			if req.GetErrorDetail() != nil {
				r.recordNack(req.GetErrorDetail().GetMessage())
			}
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.delta++
			if req.GetErrorDetail() != nil {
				r.recordNack(req.GetErrorDetail().GetMessage())
			}
			return nil
		},
	}
}

var lbPolicies = map[string]clusterv3.Cluster_LbPolicy{
	"":              clusterv3.Cluster_ROUND_ROBIN,
	"ROUND_ROBIN":   clusterv3.Cluster_ROUND_ROBIN,
	"LEAST_REQUEST": clusterv3.Cluster_LEAST_REQUEST,
	"RING_HASH":     clusterv3.Cluster_RING_HASH,
	"RANDOM":        clusterv3.Cluster_RANDOM,
	"MAGLEV":        clusterv3.Cluster_MAGLEV,
}

var healthStatuses = map[string]corev3.HealthStatus{
	"":          corev3.HealthStatus_UNKNOWN,
	"UNKNOWN":   corev3.HealthStatus_UNKNOWN,
	"HEALTHY":   corev3.HealthStatus_HEALTHY,
	"UNHEALTHY": corev3.HealthStatus_UNHEALTHY,
	"DRAINING":  corev3.HealthStatus_DRAINING,
	"TIMEOUT":   corev3.HealthStatus_TIMEOUT,
	"DEGRADED":  corev3.HealthStatus_DEGRADED,
}

func buildCluster(spec clusterSpec) (*clusterv3.Cluster, error) {
	policy, ok := lbPolicies[spec.LbPolicy]
	if !ok {
		return nil, fmt.Errorf("unknown lb_policy %q", spec.LbPolicy)
	}
	timeout := spec.ConnectTimeoutS
	if timeout == 0 {
		timeout = 5
	}
	cluster := &clusterv3.Cluster{
		Name:                 spec.Name,
		ConnectTimeout:       durationpb.New(time.Duration(timeout) * time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			},
		},
		LbPolicy: policy,
	}
	if spec.Consecutive5xx > 0 {
		cluster.OutlierDetection = &clusterv3.OutlierDetection{
			Consecutive_5Xx: wrapperspb.UInt32(spec.Consecutive5xx),
		}
	}
	if spec.MaxRequests > 0 || spec.MaxPendingRequests > 0 || spec.MaxRetries > 0 {
		limits := &clusterv3.CircuitBreakers_Thresholds{}
		if spec.MaxRequests > 0 {
			limits.MaxRequests = wrapperspb.UInt32(spec.MaxRequests)
		}
		if spec.MaxPendingRequests > 0 {
			limits.MaxPendingRequests = wrapperspb.UInt32(spec.MaxPendingRequests)
		}
		if spec.MaxRetries > 0 {
			limits.MaxRetries = wrapperspb.UInt32(spec.MaxRetries)
		}
		cluster.CircuitBreakers = &clusterv3.CircuitBreakers{
			Thresholds: []*clusterv3.CircuitBreakers_Thresholds{limits},
		}
	}
	if spec.SlowStartWindowS > 0 {
		ramp := &clusterv3.Cluster_SlowStartConfig{
			SlowStartWindow: durationpb.New(time.Duration(spec.SlowStartWindowS) * time.Second),
		}
		if spec.Aggression != 0 {
			ramp.Aggression = &corev3.RuntimeDouble{DefaultValue: spec.Aggression, RuntimeKey: "upstream.aggression"}
		}
		if spec.MinWeightPercent != 0 {
			ramp.MinWeightPercent = &typev3.Percent{Value: spec.MinWeightPercent}
		}
		if policy == clusterv3.Cluster_LEAST_REQUEST {
			cluster.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{
				LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{SlowStartConfig: ramp},
			}
		} else {
			cluster.LbConfig = &clusterv3.Cluster_RoundRobinLbConfig_{
				RoundRobinLbConfig: &clusterv3.Cluster_RoundRobinLbConfig{SlowStartConfig: ramp},
			}
		}
	}
	if spec.ZoneAware {
		zone := &clusterv3.Cluster_CommonLbConfig_ZoneAwareLbConfig{}
		if spec.MinClusterSize > 0 {
			zone.MinClusterSize = wrapperspb.UInt64(spec.MinClusterSize)
		}
		cluster.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{
			LocalityConfigSpecifier: &clusterv3.Cluster_CommonLbConfig_ZoneAwareLbConfig_{ZoneAwareLbConfig: zone},
		}
	}
	if len(spec.Sans) > 0 || spec.TLSGarbage {
		socket, err := tlsSocket(spec.Sans, spec.TLSGarbage)
		if err != nil {
			return nil, err
		}
		cluster.TransportSocket = socket
	}
	return cluster, nil
}

// tlsSocket is an envoy.transport_sockets.tls socket whose validation context matches the exact
// URI SANs given (Istio's form), or one whose typed_config bytes are not an UpstreamTlsContext.
func tlsSocket(sans []string, garbage bool) (*corev3.TransportSocket, error) {
	var typed *anypb.Any
	if garbage {
		typed = &anypb.Any{
			TypeUrl: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
			Value:   []byte{0xff, 0xff, 0xff},
		}
	} else {
		var matchers []*tlsv3.SubjectAltNameMatcher
		for _, san := range sans {
			matchers = append(matchers, &tlsv3.SubjectAltNameMatcher{
				SanType: tlsv3.SubjectAltNameMatcher_URI,
				Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: san}},
			})
		}
		context := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext: &tlsv3.CertificateValidationContext{
						MatchTypedSubjectAltNames: matchers,
					},
				},
			},
		}}
		var err error
		if typed, err = anypb.New(context); err != nil {
			return nil, err
		}
	}
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: typed},
	}, nil
}

func buildAssignment(spec assignmentSpec) (*endpointv3.ClusterLoadAssignment, error) {
	type localityKey struct {
		region, zone string
		priority     uint32
	}
	groups := map[localityKey]*endpointv3.LocalityLbEndpoints{}
	var order []localityKey
	for _, ep := range spec.Endpoints {
		health, ok := healthStatuses[ep.Health]
		if !ok {
			return nil, fmt.Errorf("unknown health %q", ep.Health)
		}
		key := localityKey{ep.Region, ep.Zone, ep.Priority}
		group, ok := groups[key]
		if !ok {
			group = &endpointv3.LocalityLbEndpoints{
				Locality: &corev3.Locality{Region: ep.Region, Zone: ep.Zone},
				Priority: ep.Priority,
			}
			groups[key] = group
			order = append(order, key)
		}
		lb := &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
					SocketAddress: &corev3.SocketAddress{
						Protocol:      corev3.SocketAddress_TCP,
						Address:       ep.Addr,
						PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: ep.Port},
					},
				}},
			}},
			HealthStatus: health,
		}
		if ep.Weight > 0 {
			lb.LoadBalancingWeight = wrapperspb.UInt32(ep.Weight)
		}
		group.LbEndpoints = append(group.LbEndpoints, lb)
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: spec.Cluster}
	if spec.OverprovisioningFactor > 0 {
		cla.Policy = &endpointv3.ClusterLoadAssignment_Policy{
			OverprovisioningFactor: wrapperspb.UInt32(spec.OverprovisioningFactor),
		}
	}
	for _, key := range order {
		cla.Endpoints = append(cla.Endpoints, groups[key])
	}
	return cla, nil
}

func buildSnapshot(spec snapshotSpec) (*cachev3.Snapshot, error) {
	var clusters, assignments []types.Resource
	for _, c := range spec.Clusters {
		cluster, err := buildCluster(c)
		if err != nil {
			return nil, err
		}
		clusters = append(clusters, cluster)
	}
	for _, a := range spec.Endpoints {
		cla, err := buildAssignment(a)
		if err != nil {
			return nil, err
		}
		assignments = append(assignments, cla)
	}
	return cachev3.NewSnapshot(spec.Version, map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  clusters,
		resourcev3.EndpointType: assignments,
	})
}

func writeJSON(w http.ResponseWriter, value any) {
	w.Header().Set("content-type", "application/json")
	_ = json.NewEncoder(w).Encode(value)
}

// serverTLS builds the mutual-TLS config of the ADS port from PEM files.
func serverTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load -tls-cert/-tls-key: %w", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read -tls-ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("-tls-ca %s holds no PEM certificate", caFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    roots,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

func main() {
	xdsAddr := flag.String("xds", "127.0.0.1:0", "the ADS listen address (a test restarting the server passes the old one)")
	tlsCert := flag.String("tls-cert", "", "PEM certificate chain of the ADS port (mutual TLS when set, with -tls-key and -tls-ca)")
	tlsKey := flag.String("tls-key", "", "PEM private key of -tls-cert")
	tlsCA := flag.String("tls-ca", "", "PEM CA certificates a client certificate must chain to")
	flag.Parse()
	var grpcOptions []grpc.ServerOption
	if *tlsCert != "" || *tlsKey != "" || *tlsCA != "" {
		config, err := serverTLS(*tlsCert, *tlsKey, *tlsCA)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tls:", err)
			os.Exit(1)
		}
		grpcOptions = append(grpcOptions, grpc.Creds(credentials.NewTLS(config)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	rec := &recorder{nacked: make(chan struct{})}
	xds := serverv3.NewServer(ctx, cache, rec.callbacks())

	grpcServer := grpc.NewServer(grpcOptions...)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(grpcServer, xds)
	xdsListener, err := net.Listen("tcp", *xdsAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen xds:", err)
		os.Exit(1)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /snapshot", func(w http.ResponseWriter, r *http.Request) {
		var spec snapshotSpec
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&spec); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if spec.Node == "" {
			spec.Node = "test-node"
		}
		snapshot, err := buildSnapshot(spec)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := cache.SetSnapshot(r.Context(), spec.Node, snapshot); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /nacks", func(w http.ResponseWriter, r *http.Request) {
		wait, _ := strconv.Atoi(r.URL.Query().Get("wait"))
		writeJSON(w, rec.waitNacks(wait))
	})
	mux.HandleFunc("GET /requests", func(w http.ResponseWriter, _ *http.Request) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		writeJSON(w, map[string]int{"sotw": rec.sotw, "delta": rec.delta})
	})
	httpListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen http:", err)
		os.Exit(1)
	}

	go func() { _ = grpcServer.Serve(xdsListener) }()
	go func() { _ = http.Serve(httpListener, mux) }()
	fmt.Printf("xds=%s http=%s\n", xdsListener.Addr(), httpListener.Addr())

	// Exit when the parent closes our stdin (or dies).
	_, _ = io.Copy(io.Discard, os.Stdin)
	grpcServer.Stop()
}
