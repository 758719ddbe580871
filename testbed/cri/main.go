// tb-cri: the CRI calls the testbed's kubelet stand-in makes to the REAL containerd
// (testbed/STANDINS-kubelet-real.md, "Pod sandboxes"), with the generated client of
// k8s.io/cri-api, the API the kubelet's own CRI client (k8s.io/cri-client) speaks.
//
//	tb-cri -endpoint unix:///run/containerd/containerd.sock version
//	tb-cri ... runp < CONFIG.json       # RunPodSandbox; prints the sandbox id
//	tb-cri ... statusp ID               # PodSandboxStatus; prints the state
//	tb-cri ... stopp ID                 # StopPodSandbox
//	tb-cri ... rmp ID                   # RemovePodSandbox
//	tb-cri ... pods                     # ListPodSandbox: "ID STATE NAMESPACE/NAME UID ATTEMPT" lines
//	tb-cri ... imagestatus REF          # ImageStatus: prints the image's id, nothing when absent
//	tb-cri ... pull REF                 # PullImage: prints the image's ref
//
// CONFIG.json is a runtime.v1.PodSandboxConfig in protobuf's JSON mapping. Errors go to
// stderr as the gRPC status prints them ("rpc error: code = ... desc = ..."), exit 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "unix:///run/containerd/containerd.sock", "the CRI socket")
	timeout := flag.Duration("timeout", 2*time.Minute, "how long one call may take")
	flag.Parse()
	if err := run(*endpoint, *timeout, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(endpoint string, timeout time.Duration, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: tb-cri [-endpoint E] version|runp|statusp ID|stopp ID|rmp ID|pods|imagestatus REF|pull REF")
	}
	// The kubelet's dialer (cri-client remote_runtime.go): a unix socket, no TLS.
	target := "unix://" + strings.TrimPrefix(endpoint, "unix://")
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	id := func() (string, error) {
		if len(args) != 2 {
			return "", fmt.Errorf("%s needs one argument", args[0])
		}
		return args[1], nil
	}
	switch args[0] {
	case "version":
		v, err := rt.Version(ctx, &runtimeapi.VersionRequest{})
		if err != nil {
			return err
		}
		fmt.Println(v.RuntimeName, v.RuntimeVersion)
	case "runp":
		text, err := io.ReadAll(os.Stdin)
		if err != nil {
			return err
		}
		config := &runtimeapi.PodSandboxConfig{}
		if err := protojson.Unmarshal(text, config); err != nil {
			return fmt.Errorf("PodSandboxConfig: %w", err)
		}
		r, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: config})
		if err != nil {
			return err
		}
		fmt.Println(r.PodSandboxId)
	case "statusp":
		id, err := id()
		if err != nil {
			return err
		}
		r, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
		if err != nil {
			return err
		}
		fmt.Println(r.Status.State)
	case "stopp":
		id, err := id()
		if err != nil {
			return err
		}
		_, err = rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
		return err
	case "rmp":
		id, err := id()
		if err != nil {
			return err
		}
		_, err = rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
		return err
	case "pods":
		r, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			return err
		}
		for _, s := range r.Items {
			m := s.Metadata
			fmt.Printf("%s %s %s/%s %s %d\n", s.Id, s.State, m.GetNamespace(), m.GetName(), m.GetUid(), m.GetAttempt())
		}
	case "imagestatus", "pull":
		ref, err := id()
		if err != nil {
			return err
		}
		is := runtimeapi.NewImageServiceClient(conn)
		spec := &runtimeapi.ImageSpec{Image: ref}
		if args[0] == "pull" {
			r, err := is.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec})
			if err != nil {
				return err
			}
			fmt.Println(r.ImageRef)
			return nil
		}
		r, err := is.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: spec})
		if err != nil {
			return err
		}
		if r.Image != nil {
			fmt.Println(r.Image.Id)
		}
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
	return nil
}
