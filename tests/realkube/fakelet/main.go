// Command fakelet is a kubelet stand-in for scripts/realkube. It runs no
// containers. It registers Nodes (Ready, untainted, with allocatable), binds
// every unscheduled pod to one of them (there is no scheduler; a DaemonSet
// pod goes to the node its nodeAffinity names), reports bound pods Running
// with Ready containers, and removes pods being deleted at once.
//
// A pod with a container whose image matches --bad-image is reported Running
// but never Ready, as with a readiness probe that always fails, so rollouts
// of such an image stall and hit their progress deadline.
package main

import (
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"os"
	"os/signal"
	"regexp"
	"sync/atomic"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

const kubeletVersion = "v1.37.2"

type fakelet struct {
	client   kubernetes.Interface
	nodes    []string
	badImage *regexp.Regexp
	pods     corelisters.PodLister
	queue    workqueue.TypedRateLimitingInterface[string]
	nextIP   atomic.Uint32
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of a user allowed to manage nodes and pods")
	prefix := flag.String("node-prefix", "fakelet-", "nodes are named PREFIX0, PREFIX1, ...")
	count := flag.Int("nodes", 1, "number of nodes to register")
	bad := flag.String("bad-image", `:bad|-bad`, "pods with a container image matching this regex run but never become Ready")
	workers := flag.Int("workers", 4, "pod workers")
	klog.InitFlags(nil)
	flag.Parse()

	re, err := regexp.Compile(*bad)
	if err != nil {
		klog.Fatalf("--bad-image: %v", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Fatalf("kubeconfig: %v", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	cfg.UserAgent = "fakelet"
	client := kubernetes.NewForConfigOrDie(cfg)

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	f := &fakelet{
		client:   client,
		badImage: re,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](20*time.Millisecond, 2*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "fakelet"}),
	}
	for i := 0; i < *count; i++ {
		f.nodes = append(f.nodes, fmt.Sprintf("%s%d", *prefix, i))
	}
	for _, n := range f.nodes {
		if err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
			if err := f.registerNode(ctx, n); err != nil {
				klog.Errorf("register node %s: %v", n, err)
				return false, nil
			}
			return true, nil
		}); err != nil {
			os.Exit(1)
		}
		klog.Infof("node %s registered and Ready", n)
	}
	go wait.UntilWithContext(ctx, f.heartbeat, 10*time.Second)

	factory := informers.NewSharedInformerFactory(client, 0)
	podInformer := factory.Core().V1().Pods()
	f.pods = podInformer.Lister()
	enqueue := func(obj interface{}) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			f.queue.Add(key)
		}
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj interface{}) { enqueue(obj) },
	}); err != nil {
		klog.Fatal(err)
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	for i := 0; i < *workers; i++ {
		go wait.UntilWithContext(ctx, f.work, time.Second)
	}
	klog.Infof("fakelet running: nodes %v, bad image pattern %q", f.nodes, re.String())
	<-ctx.Done()
	f.queue.ShutDown()
}

func (f *fakelet) registerNode(ctx context.Context, name string) error {
	nodes := f.client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err = nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "fakelet",
			},
		}}, metav1.CreateOptions{})
	}
	if err != nil {
		return err
	}
	// The TaintNodesByCondition admission plugin taints a new node
	// not-ready; the node-lifecycle controller that would lift it is not run.
	if len(node.Spec.Taints) > 0 {
		node.Spec.Taints = nil
		if node, err = nodes.Update(ctx, node, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("64"),
		corev1.ResourceMemory:           resource.MustParse("256Gi"),
		corev1.ResourcePods:             resource.MustParse("1000"),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
	node.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "fakelet is ready", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse, Reason: "RouteCreated", LastHeartbeatTime: now, LastTransitionTime: now},
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
			{Type: corev1.NodeHostName, Address: name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 0}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               name,
			SystemUUID:              name,
			BootID:                  name,
			KernelVersion:           "fakelet",
			OSImage:                 "fakelet",
			ContainerRuntimeVersion: "fakelet://0",
			KubeletVersion:          kubeletVersion,
			OperatingSystem:         "linux",
			Architecture:            "amd64",
		},
	}
	_, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// heartbeat renews each node's Lease and Ready condition, as a kubelet does.
func (f *fakelet) heartbeat(ctx context.Context) {
	for _, name := range f.nodes {
		leases := f.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
		now := metav1.NewMicroTime(time.Now())
		lease, err := leases.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity:       ptr.To(name),
					LeaseDurationSeconds: ptr.To[int32](40),
					RenewTime:            &now,
				},
			}, metav1.CreateOptions{})
		case err == nil:
			lease.Spec.RenewTime = &now
			_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		}
		if err != nil && ctx.Err() == nil {
			klog.Warningf("lease %s: %v", name, err)
		}
		node, err := f.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				err = f.registerNode(ctx, name)
			}
			if err != nil && ctx.Err() == nil {
				klog.Warningf("node %s: %v", name, err)
			}
			continue
		}
		for i := range node.Status.Conditions {
			node.Status.Conditions[i].LastHeartbeatTime = metav1.Now()
		}
		if _, err := f.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
			klog.Warningf("node %s status: %v", name, err)
		}
	}
}

func (f *fakelet) work(ctx context.Context) {
	for {
		key, quit := f.queue.Get()
		if quit {
			return
		}
		if err := f.sync(ctx, key); err != nil {
			if ctx.Err() == nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
				klog.Warningf("pod %s: %v", key, err)
			}
			f.queue.AddRateLimited(key)
		} else {
			f.queue.Forget(key)
		}
		f.queue.Done(key)
	}
}

func (f *fakelet) ours(node string) bool {
	for _, n := range f.nodes {
		if n == node {
			return true
		}
	}
	return false
}

// pickNode honours a DaemonSet pod's required nodeAffinity on metadata.name
// (or a plain nodeSelector on the hostname label); anything else is spread
// over the nodes by a hash of the pod's name. "" means not ours to place.
func (f *fakelet) pickNode(pod *corev1.Pod) string {
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, req := range term.MatchFields {
				if req.Key == "metadata.name" && req.Operator == corev1.NodeSelectorOpIn {
					for _, v := range req.Values {
						if f.ours(v) {
							return v
						}
					}
					return ""
				}
			}
		}
	}
	if h, ok := pod.Spec.NodeSelector["kubernetes.io/hostname"]; ok {
		if f.ours(h) {
			return h
		}
		return ""
	}
	sum := fnv.New32a()
	sum.Write([]byte(pod.Namespace + "/" + pod.Name))
	return f.nodes[int(sum.Sum32())%len(f.nodes)]
}

func (f *fakelet) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := f.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	pods := f.client.CoreV1().Pods(ns)

	if pod.DeletionTimestamp != nil {
		if pod.Spec.NodeName != "" && !f.ours(pod.Spec.NodeName) {
			return nil
		}
		// The containers "stopped" at once: finish the graceful delete.
		err := pods.Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0),
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}

	if pod.Spec.NodeName == "" {
		if pod.Spec.SchedulerName != "" && pod.Spec.SchedulerName != corev1.DefaultSchedulerName {
			return nil
		}
		node := f.pickNode(pod)
		if node == "" {
			return nil
		}
		return pods.Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: name, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: node},
		}, metav1.CreateOptions{})
	}
	if !f.ours(pod.Spec.NodeName) {
		return nil
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}

	ready := true
	for _, c := range pod.Spec.Containers {
		if f.badImage.MatchString(c.Image) {
			ready = false
		}
	}
	if pod.Status.Phase == corev1.PodRunning && condition(pod, corev1.PodReady) == boolStatus(ready) &&
		len(pod.Status.ContainerStatuses) == len(pod.Spec.Containers) && imagesMatch(pod) {
		return nil
	}
	return f.setRunning(ctx, pod.DeepCopy(), ready)
}

func (f *fakelet) setRunning(ctx context.Context, pod *corev1.Pod, ready bool) error {
	now := metav1.Now()
	started := pod.Status.StartTime
	if started == nil {
		started = &now
	}
	ip := pod.Status.PodIP
	if ip == "" {
		// Data only: nothing ever connects to a pod here. Loopback, so that
		// a mistaken dial stays on this machine.
		n := f.nextIP.Add(1)
		ip = fmt.Sprintf("127.1.%d.%d", (n/250)%250, n%250+1)
	}
	st := &pod.Status
	st.Phase = corev1.PodRunning
	st.HostIP = "127.0.0.1"
	st.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
	st.PodIP = ip
	st.PodIPs = []corev1.PodIP{{IP: ip}}
	st.StartTime = started
	st.Reason, st.Message = "", ""
	if st.QOSClass == "" {
		st.QOSClass = corev1.PodQOSBestEffort
	}
	setCondition(pod, corev1.PodScheduled, true, now)
	setCondition(pod, corev1.PodReadyToStartContainers, true, now)
	setCondition(pod, corev1.PodInitialized, true, now)
	setCondition(pod, corev1.ContainersReady, ready, now)
	setCondition(pod, corev1.PodReady, ready, now)

	st.InitContainerStatuses = nil
	for _, c := range pod.Spec.InitContainers {
		s := corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "fakelet://" + c.Image,
			ContainerID: fmt.Sprintf("fakelet://%s-%s", pod.UID, c.Name),
		}
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			s.Ready, s.Started = ready, ptr.To(true)
			s.State.Running = &corev1.ContainerStateRunning{StartedAt: *started}
		} else {
			s.Ready, s.Started = true, ptr.To(false)
			s.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: *started, FinishedAt: *started}
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, s)
	}
	old := map[string]corev1.ContainerStatus{}
	for _, s := range st.ContainerStatuses {
		old[s.Name] = s
	}
	st.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		since := now
		if o, ok := old[c.Name]; ok && o.Image == c.Image && o.State.Running != nil {
			since = o.State.Running.StartedAt
		}
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "fakelet://" + c.Image,
			ContainerID: fmt.Sprintf("fakelet://%s-%s", pod.UID, c.Name),
			Ready:       !f.badImage.MatchString(c.Image),
			Started:     ptr.To(true),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: since}},
		})
	}
	_, err := f.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	return err
}

func boolStatus(b bool) corev1.ConditionStatus {
	if b {
		return corev1.ConditionTrue
	}
	return corev1.ConditionFalse
}

func condition(pod *corev1.Pod, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range pod.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

func setCondition(pod *corev1.Pod, t corev1.PodConditionType, b bool, now metav1.Time) {
	want := boolStatus(b)
	reason := ""
	if !b && (t == corev1.PodReady || t == corev1.ContainersReady) {
		reason = "ContainersNotReady"
	}
	for i := range pod.Status.Conditions {
		c := &pod.Status.Conditions[i]
		if c.Type == t {
			if c.Status != want {
				c.Status, c.LastTransitionTime = want, now
			}
			c.Reason = reason
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{
		Type: t, Status: want, Reason: reason, LastTransitionTime: now,
	})
}

// imagesMatch tells whether the reported statuses still describe the spec
// (an in-place image change must be reported anew).
func imagesMatch(pod *corev1.Pod) bool {
	for i, c := range pod.Spec.Containers {
		if pod.Status.ContainerStatuses[i].Name != c.Name || pod.Status.ContainerStatuses[i].Image != c.Image {
			return false
		}
	}
	return true
}
