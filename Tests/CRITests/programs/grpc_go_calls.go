// The grpc-go client of CRIServerTests.testGrpcGoClientKeepsItsConnection
// (built by Tests/Conformance/cri-tools.sh go-build). Makes N ListPodSandbox
// calls one after another on one grpc-go connection and prints how many times the connection became READY (1 if it was never
// dropped) and how many calls failed.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	n, _ := strconv.Atoi(os.Args[2])
	conn, err := grpc.NewClient("unix://"+os.Args[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	var ready atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := conn.GetState()
		for conn.WaitForStateChange(ctx, s) {
			s = conn.GetState()
			if s == connectivity.Ready {
				ready.Add(1)
			}
		}
	}()
	client := runtimeapi.NewRuntimeServiceClient(conn)
	failed := 0
	for i := 0; i < n; i++ {
		if _, err := client.ListPodSandbox(context.Background(), &runtimeapi.ListPodSandboxRequest{}); err != nil {
			failed++
		}
	}
	conn.Close()
	cancel()
	<-done
	fmt.Printf("calls=%d failed=%d connections=%d\n", n, failed, ready.Load())
}
