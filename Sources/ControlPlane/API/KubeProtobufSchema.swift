// The wire schema of the Kubernetes objects `kubectl create`/`run` and other typed clients send
// as application/vnd.kubernetes.protobuf (KubeProtobuf.swift decodes them): for each message
// (package.Name, packages core = v1, apps = apps/v1, batch = batch/v1, meta, intstr, resource,
// runtime), its fields as NUMBER:JSONNAME:KIND[:MESSAGE]. KIND: s string, i integer, b bool,
// y bytes (base64 in JSON), d floating point, t Time (RFC 3339), q Quantity (a string), n
// IntOrString, x raw JSON bytes, m a message, z a type not served here (refused); a prefix R
// means repeated, M a map from strings. Generated from the published field numbers of the
// v1 API (Kubernetes 1.3x): names and numbers only, they are the protocol.

enum KubeProtobufSchema {
    static let text = """
        apps.DaemonSet 1:metadata:m:meta.ObjectMeta 2:spec:m:apps.DaemonSetSpec 3:status:m:apps.DaemonSetStatus
        apps.DaemonSetCondition 1:type:s 2:status:s 3:lastTransitionTime:t 4:reason:s 5:message:s
        apps.DaemonSetSpec 1:selector:m:meta.LabelSelector 2:template:m:core.PodTemplateSpec 3:updateStrategy:m:apps.DaemonSetUpdateStrategy 4:minReadySeconds:i 6:revisionHistoryLimit:i
        apps.DaemonSetStatus 1:currentNumberScheduled:i 2:numberMisscheduled:i 3:desiredNumberScheduled:i 4:numberReady:i 5:observedGeneration:i 6:updatedNumberScheduled:i 7:numberAvailable:i 8:numberUnavailable:i 9:collisionCount:i 10:conditions:Rm:apps.DaemonSetCondition
        apps.DaemonSetUpdateStrategy 1:type:s 2:rollingUpdate:m:apps.RollingUpdateDaemonSet
        apps.Deployment 1:metadata:m:meta.ObjectMeta 2:spec:m:apps.DeploymentSpec 3:status:m:apps.DeploymentStatus
        apps.DeploymentCondition 1:type:s 2:status:s 6:lastUpdateTime:t 7:lastTransitionTime:t 4:reason:s 5:message:s
        apps.DeploymentSpec 1:replicas:i 2:selector:m:meta.LabelSelector 3:template:m:core.PodTemplateSpec 4:strategy:m:apps.DeploymentStrategy 5:minReadySeconds:i 6:revisionHistoryLimit:i 7:paused:b 9:progressDeadlineSeconds:i
        apps.DeploymentStatus 1:observedGeneration:i 2:replicas:i 3:updatedReplicas:i 7:readyReplicas:i 4:availableReplicas:i 5:unavailableReplicas:i 9:terminatingReplicas:i 6:conditions:Rm:apps.DeploymentCondition 8:collisionCount:i
        apps.DeploymentStrategy 1:type:s 2:rollingUpdate:m:apps.RollingUpdateDeployment
        apps.ReplicaSet 1:metadata:m:meta.ObjectMeta 2:spec:m:apps.ReplicaSetSpec 3:status:m:apps.ReplicaSetStatus
        apps.ReplicaSetCondition 1:type:s 2:status:s 3:lastTransitionTime:t 4:reason:s 5:message:s
        apps.ReplicaSetSpec 1:replicas:i 4:minReadySeconds:i 2:selector:m:meta.LabelSelector 3:template:m:core.PodTemplateSpec
        apps.ReplicaSetStatus 1:replicas:i 2:fullyLabeledReplicas:i 4:readyReplicas:i 5:availableReplicas:i 7:terminatingReplicas:i 3:observedGeneration:i 6:conditions:Rm:apps.ReplicaSetCondition
        apps.RollingUpdateDaemonSet 1:maxUnavailable:n 2:maxSurge:n
        apps.RollingUpdateDeployment 1:maxUnavailable:n 2:maxSurge:n
        apps.RollingUpdateStatefulSetStrategy 1:partition:i 2:maxUnavailable:n
        apps.StatefulSet 1:metadata:m:meta.ObjectMeta 2:spec:m:apps.StatefulSetSpec 3:status:m:apps.StatefulSetStatus
        apps.StatefulSetCondition 1:type:s 2:status:s 3:lastTransitionTime:t 4:reason:s 5:message:s
        apps.StatefulSetOrdinals 1:start:i
        apps.StatefulSetPersistentVolumeClaimRetentionPolicy 1:whenDeleted:s 2:whenScaled:s
        apps.StatefulSetSpec 1:replicas:i 2:selector:m:meta.LabelSelector 3:template:m:core.PodTemplateSpec 4:volumeClaimTemplates:Rm:core.PersistentVolumeClaim 5:serviceName:s 6:podManagementPolicy:s 7:updateStrategy:m:apps.StatefulSetUpdateStrategy 8:revisionHistoryLimit:i 9:minReadySeconds:i 10:persistentVolumeClaimRetentionPolicy:m:apps.StatefulSetPersistentVolumeClaimRetentionPolicy 11:ordinals:m:apps.StatefulSetOrdinals
        apps.StatefulSetStatus 1:observedGeneration:i 2:replicas:i 3:readyReplicas:i 4:currentReplicas:i 5:updatedReplicas:i 6:currentRevision:s 7:updateRevision:s 9:collisionCount:i 10:conditions:Rm:apps.StatefulSetCondition 11:availableReplicas:i
        apps.StatefulSetUpdateStrategy 1:type:s 2:rollingUpdate:m:apps.RollingUpdateStatefulSetStrategy
        batch.CronJob 1:metadata:m:meta.ObjectMeta 2:spec:m:batch.CronJobSpec 3:status:m:batch.CronJobStatus
        batch.CronJobSpec 1:schedule:s 8:timeZone:s 2:startingDeadlineSeconds:i 3:concurrencyPolicy:s 4:suspend:b 5:jobTemplate:m:batch.JobTemplateSpec 6:successfulJobsHistoryLimit:i 7:failedJobsHistoryLimit:i
        batch.CronJobStatus 1:active:Rm:core.ObjectReference 4:lastScheduleTime:t 5:lastSuccessfulTime:t
        batch.Job 1:metadata:m:meta.ObjectMeta 2:spec:m:batch.JobSpec 3:status:m:batch.JobStatus
        batch.JobCondition 1:type:s 2:status:s 3:lastProbeTime:t 4:lastTransitionTime:t 5:reason:s 6:message:s
        batch.JobSchedulingConfiguration 1:schedulingPolicy:z 2:schedulingConstraints:z 3:disruptionMode:z 4:resourceClaims:Rz
        batch.JobSpec 1:parallelism:i 2:completions:i 3:activeDeadlineSeconds:i 11:podFailurePolicy:m:batch.PodFailurePolicy 16:successPolicy:m:batch.SuccessPolicy 7:backoffLimit:i 12:backoffLimitPerIndex:i 13:maxFailedIndexes:i 4:selector:m:meta.LabelSelector 5:manualSelector:b 6:template:m:core.PodTemplateSpec 8:ttlSecondsAfterFinished:i 9:completionMode:s 10:suspend:b 14:podReplacementPolicy:s 15:managedBy:s 17:scheduling:m:batch.JobSchedulingConfiguration
        batch.JobStatus 1:conditions:Rm:batch.JobCondition 2:startTime:t 3:completionTime:t 4:active:i 5:succeeded:i 6:failed:i 11:terminating:i 7:completedIndexes:s 10:failedIndexes:s 8:uncountedTerminatedPods:m:batch.UncountedTerminatedPods 9:ready:i
        batch.JobTemplateSpec 1:metadata:m:meta.ObjectMeta 2:spec:m:batch.JobSpec
        batch.PodFailurePolicy 1:rules:Rm:batch.PodFailurePolicyRule
        batch.PodFailurePolicyOnExitCodesRequirement 1:containerName:s 2:operator:s 3:values:Ri
        batch.PodFailurePolicyOnPodConditionsPattern 1:type:s 2:status:s
        batch.PodFailurePolicyRule 1:action:s 2:onExitCodes:m:batch.PodFailurePolicyOnExitCodesRequirement 3:onPodConditions:Rm:batch.PodFailurePolicyOnPodConditionsPattern
        batch.SuccessPolicy 1:rules:Rm:batch.SuccessPolicyRule
        batch.SuccessPolicyRule 1:succeededIndexes:s 2:succeededCount:i
        batch.UncountedTerminatedPods 1:succeeded:Rs 2:failed:Rs
        core.AWSElasticBlockStoreVolumeSource 1:volumeID:s 2:fsType:s 3:partition:i 4:readOnly:b
        core.Affinity 1:nodeAffinity:m:core.NodeAffinity 2:podAffinity:m:core.PodAffinity 3:podAntiAffinity:m:core.PodAntiAffinity
        core.AppArmorProfile 1:type:s 2:localhostProfile:s
        core.AzureDiskVolumeSource 1:diskName:s 2:diskURI:s 3:cachingMode:s 4:fsType:s 5:readOnly:b 6:kind:s
        core.AzureFileVolumeSource 1:secretName:s 2:shareName:s 3:readOnly:b
        core.CSIVolumeSource 1:driver:s 2:readOnly:b 3:fsType:s 4:volumeAttributes:Ms 5:nodePublishSecretRef:m:core.LocalObjectReference
        core.Capabilities 1:add:Rs 2:drop:Rs
        core.CephFSVolumeSource 1:monitors:Rs 2:path:s 3:user:s 4:secretFile:s 5:secretRef:m:core.LocalObjectReference 6:readOnly:b
        core.CinderVolumeSource 1:volumeID:s 2:fsType:s 3:readOnly:b 4:secretRef:m:core.LocalObjectReference
        core.ClientIPConfig 1:timeoutSeconds:i
        core.ClusterTrustBundleProjection 1:name:s 2:signerName:s 3:labelSelector:m:meta.LabelSelector 5:optional:b 4:path:s 6:user:i
        core.ConfigMap 1:metadata:m:meta.ObjectMeta 4:immutable:b 2:data:Ms 3:binaryData:My
        core.ConfigMapEnvSource 1:localObjectReference:m:core.LocalObjectReference 2:optional:b
        core.ConfigMapKeySelector 1:localObjectReference:m:core.LocalObjectReference 2:key:s 3:optional:b
        core.ConfigMapProjection 1:localObjectReference:m:core.LocalObjectReference 2:items:Rm:core.KeyToPath 4:optional:b
        core.ConfigMapVolumeSource 1:localObjectReference:m:core.LocalObjectReference 2:items:Rm:core.KeyToPath 3:defaultMode:i 4:optional:b 5:defaultUser:i
        core.Container 1:name:s 2:image:s 3:command:Rs 4:args:Rs 5:workingDir:s 6:ports:Rm:core.ContainerPort 19:envFrom:Rm:core.EnvFromSource 7:env:Rm:core.EnvVar 8:resources:m:core.ResourceRequirements 23:resizePolicy:Rm:core.ContainerResizePolicy 24:restartPolicy:s 25:restartPolicyRules:Rm:core.ContainerRestartRule 9:volumeMounts:Rm:core.VolumeMount 21:volumeDevices:Rm:core.VolumeDevice 10:livenessProbe:m:core.Probe 11:readinessProbe:m:core.Probe 22:startupProbe:m:core.Probe 12:lifecycle:m:core.Lifecycle 13:terminationMessagePath:s 20:terminationMessagePolicy:s 14:imagePullPolicy:s 15:securityContext:m:core.SecurityContext 16:stdin:b 17:stdinOnce:b 18:tty:b
        core.ContainerExtendedResourceRequest 1:containerName:s 2:resourceName:s 3:requestName:s
        core.ContainerPort 1:name:s 2:hostPort:i 3:containerPort:i 4:protocol:s 5:hostIP:s
        core.ContainerResizePolicy 1:resourceName:s 2:restartPolicy:s
        core.ContainerRestartRule 1:action:s 2:exitCodes:m:core.ContainerRestartRuleOnExitCodes
        core.ContainerRestartRuleOnExitCodes 1:operator:s 2:values:Ri
        core.ContainerState 1:waiting:m:core.ContainerStateWaiting 2:running:m:core.ContainerStateRunning 3:terminated:m:core.ContainerStateTerminated
        core.ContainerStateRunning 1:startedAt:t
        core.ContainerStateTerminated 1:exitCode:i 2:signal:i 3:reason:s 4:message:s 5:startedAt:t 6:finishedAt:t 7:containerID:s
        core.ContainerStateWaiting 1:reason:s 2:message:s
        core.ContainerStatus 1:name:s 2:state:m:core.ContainerState 3:lastState:m:core.ContainerState 4:ready:b 5:restartCount:i 6:image:s 7:imageID:s 8:containerID:s 9:started:b 10:allocatedResources:Mq 11:resources:m:core.ResourceRequirements 12:volumeMounts:Rm:core.VolumeMountStatus 13:user:m:core.ContainerUser 14:allocatedResourcesStatus:Rm:core.ResourceStatus 15:stopSignal:s
        core.ContainerUser 1:linux:m:core.LinuxContainerUser
        core.DownwardAPIProjection 1:items:Rm:core.DownwardAPIVolumeFile
        core.DownwardAPIVolumeFile 1:path:s 2:fieldRef:m:core.ObjectFieldSelector 3:resourceFieldRef:m:core.ResourceFieldSelector 4:mode:i 5:user:i
        core.DownwardAPIVolumeSource 1:items:Rm:core.DownwardAPIVolumeFile 2:defaultMode:i 3:defaultUser:i
        core.EmptyDirVolumeSource 1:medium:s 2:sizeLimit:q 3:mode:i
        core.EndpointAddress 1:ip:s 3:hostname:s 4:nodeName:s 2:targetRef:m:core.ObjectReference
        core.EndpointPort 1:name:s 2:port:i 3:protocol:s 4:appProtocol:s
        core.EndpointSubset 1:addresses:Rm:core.EndpointAddress 2:notReadyAddresses:Rm:core.EndpointAddress 3:ports:Rm:core.EndpointPort
        core.Endpoints 1:metadata:m:meta.ObjectMeta 2:subsets:Rm:core.EndpointSubset
        core.EnvFromSource 1:prefix:s 2:configMapRef:m:core.ConfigMapEnvSource 3:secretRef:m:core.SecretEnvSource
        core.EnvVar 1:name:s 2:value:s 3:valueFrom:m:core.EnvVarSource
        core.EnvVarSource 1:fieldRef:m:core.ObjectFieldSelector 2:resourceFieldRef:m:core.ResourceFieldSelector 3:configMapKeyRef:m:core.ConfigMapKeySelector 4:secretKeyRef:m:core.SecretKeySelector 5:fileKeyRef:m:core.FileKeySelector
        core.EphemeralContainer 1:ephemeralContainerCommon:m:core.EphemeralContainerCommon 2:targetContainerName:s
        core.EphemeralContainerCommon 1:name:s 2:image:s 3:command:Rs 4:args:Rs 5:workingDir:s 6:ports:Rm:core.ContainerPort 19:envFrom:Rm:core.EnvFromSource 7:env:Rm:core.EnvVar 8:resources:m:core.ResourceRequirements 23:resizePolicy:Rm:core.ContainerResizePolicy 24:restartPolicy:s 25:restartPolicyRules:Rm:core.ContainerRestartRule 9:volumeMounts:Rm:core.VolumeMount 21:volumeDevices:Rm:core.VolumeDevice 10:livenessProbe:m:core.Probe 11:readinessProbe:m:core.Probe 22:startupProbe:m:core.Probe 12:lifecycle:m:core.Lifecycle 13:terminationMessagePath:s 20:terminationMessagePolicy:s 14:imagePullPolicy:s 15:securityContext:m:core.SecurityContext 16:stdin:b 17:stdinOnce:b 18:tty:b
        core.EphemeralVolumeSource 1:volumeClaimTemplate:m:core.PersistentVolumeClaimTemplate
        core.EvictionResponder 1:name:s 2:priority:i
        core.ExecAction 1:command:Rs
        core.FCVolumeSource 1:targetWWNs:Rs 2:lun:i 3:fsType:s 4:readOnly:b 5:wwids:Rs
        core.FileKeySelector 1:volumeName:s 2:path:s 3:key:s 4:optional:b
        core.FlexVolumeSource 1:driver:s 2:fsType:s 3:secretRef:m:core.LocalObjectReference 4:readOnly:b 5:options:Ms
        core.FlockerVolumeSource 1:datasetName:s 2:datasetUUID:s
        core.GCEPersistentDiskVolumeSource 1:pdName:s 2:fsType:s 3:partition:i 4:readOnly:b
        core.GRPCAction 1:port:i 2:service:s 3:mode:s
        core.GitRepoVolumeSource 1:repository:s 2:revision:s 3:directory:s
        core.GlusterfsVolumeSource 1:endpoints:s 2:path:s 3:readOnly:b
        core.HTTPGetAction 1:path:s 2:port:n 3:host:s 4:scheme:s 5:httpHeaders:Rm:core.HTTPHeader 6:protocol:s
        core.HTTPHeader 1:name:s 2:value:s
        core.HostAlias 1:ip:s 2:hostnames:Rs
        core.HostIP 1:ip:s
        core.HostPathVolumeSource 1:path:s 2:type:s
        core.ISCSIVolumeSource 1:targetPortal:s 2:iqn:s 3:lun:i 4:iscsiInterface:s 5:fsType:s 6:readOnly:b 7:portals:Rs 8:chapAuthDiscovery:b 11:chapAuthSession:b 10:secretRef:m:core.LocalObjectReference 12:initiatorName:s
        core.ImageVolumeSource 1:reference:s 2:pullPolicy:s
        core.ImageVolumeStatus 1:imageRef:s
        core.KeyToPath 1:key:s 2:path:s 3:mode:i 4:user:i
        core.Lifecycle 1:postStart:m:core.LifecycleHandler 2:preStop:m:core.LifecycleHandler 3:stopSignal:s
        core.LifecycleHandler 1:exec:m:core.ExecAction 2:httpGet:m:core.HTTPGetAction 3:tcpSocket:m:core.TCPSocketAction 4:sleep:m:core.SleepAction
        core.LimitRange 1:metadata:m:meta.ObjectMeta 2:spec:m:core.LimitRangeSpec
        core.LimitRangeItem 1:type:s 2:max:Mq 3:min:Mq 4:default:Mq 5:defaultRequest:Mq 6:maxLimitRequestRatio:Mq
        core.LimitRangeSpec 1:limits:Rm:core.LimitRangeItem
        core.LinuxContainerUser 1:uid:i 2:gid:i 3:supplementalGroups:Ri
        core.LoadBalancerIngress 1:ip:s 2:hostname:s 3:ipMode:s 4:ports:Rm:core.PortStatus
        core.LoadBalancerStatus 1:ingress:Rm:core.LoadBalancerIngress
        core.LocalObjectReference 1:name:s
        core.ModifyVolumeStatus 1:targetVolumeAttributesClassName:s 2:status:s
        core.NFSVolumeSource 1:server:s 2:path:s 3:readOnly:b
        core.Namespace 1:metadata:m:meta.ObjectMeta 2:spec:m:core.NamespaceSpec 3:status:m:core.NamespaceStatus
        core.NamespaceCondition 1:type:s 2:status:s 4:lastTransitionTime:t 5:reason:s 6:message:s
        core.NamespaceSpec 1:finalizers:Rs
        core.NamespaceStatus 1:phase:s 2:conditions:Rm:core.NamespaceCondition
        core.NodeAffinity 1:requiredDuringSchedulingIgnoredDuringExecution:m:core.NodeSelector 2:preferredDuringSchedulingIgnoredDuringExecution:Rm:core.PreferredSchedulingTerm
        core.NodeAllocatableMappedResources 1:name:s 2:quantity:q
        core.NodeAllocatableOverheadResources 1:name:s 2:perPod:q 3:perContainer:q
        core.NodeAllocatableResourceClaimStatus 1:resourceClaimName:s 2:containers:Rs 4:mapping:Rm:core.NodeAllocatableMappedResources 5:overhead:Rm:core.NodeAllocatableOverheadResources
        core.NodeSelector 1:nodeSelectorTerms:Rm:core.NodeSelectorTerm
        core.NodeSelectorRequirement 1:key:s 2:operator:s 3:values:Rs
        core.NodeSelectorTerm 1:matchExpressions:Rm:core.NodeSelectorRequirement 2:matchFields:Rm:core.NodeSelectorRequirement
        core.ObjectFieldSelector 1:apiVersion:s 2:fieldPath:s
        core.ObjectReference 1:kind:s 2:namespace:s 3:name:s 4:uid:s 5:apiVersion:s 6:resourceVersion:s 7:fieldPath:s
        core.PersistentVolumeClaim 1:metadata:m:meta.ObjectMeta 2:spec:m:core.PersistentVolumeClaimSpec 3:status:m:core.PersistentVolumeClaimStatus
        core.PersistentVolumeClaimCondition 1:type:s 2:status:s 3:lastProbeTime:t 4:lastTransitionTime:t 5:reason:s 6:message:s
        core.PersistentVolumeClaimSpec 1:accessModes:Rs 4:selector:m:meta.LabelSelector 2:resources:m:core.VolumeResourceRequirements 3:volumeName:s 5:storageClassName:s 6:volumeMode:s 7:dataSource:m:core.TypedLocalObjectReference 8:dataSourceRef:m:core.TypedObjectReference 9:volumeAttributesClassName:s
        core.PersistentVolumeClaimStatus 1:phase:s 2:accessModes:Rs 3:capacity:Mq 4:conditions:Rm:core.PersistentVolumeClaimCondition 5:allocatedResources:Mq 7:allocatedResourceStatuses:Ms 8:currentVolumeAttributesClassName:s 9:modifyVolumeStatus:m:core.ModifyVolumeStatus 10:healthStatus:m:core.VolumeHealthStatus
        core.PersistentVolumeClaimTemplate 1:metadata:m:meta.ObjectMeta 2:spec:m:core.PersistentVolumeClaimSpec
        core.PersistentVolumeClaimVolumeSource 1:claimName:s 2:readOnly:b
        core.PhotonPersistentDiskVolumeSource 1:pdID:s 2:fsType:s
        core.Pod 1:metadata:m:meta.ObjectMeta 2:spec:m:core.PodSpec 3:status:m:core.PodStatus
        core.PodAffinity 1:requiredDuringSchedulingIgnoredDuringExecution:Rm:core.PodAffinityTerm 2:preferredDuringSchedulingIgnoredDuringExecution:Rm:core.WeightedPodAffinityTerm
        core.PodAffinityTerm 1:labelSelector:m:meta.LabelSelector 2:namespaces:Rs 3:topologyKey:s 4:namespaceSelector:m:meta.LabelSelector 5:matchLabelKeys:Rs 6:mismatchLabelKeys:Rs
        core.PodAntiAffinity 1:requiredDuringSchedulingIgnoredDuringExecution:Rm:core.PodAffinityTerm 2:preferredDuringSchedulingIgnoredDuringExecution:Rm:core.WeightedPodAffinityTerm
        core.PodCertificateProjection 1:signerName:s 2:keyType:s 3:maxExpirationSeconds:i 4:credentialBundlePath:s 5:keyPath:s 6:certificateChainPath:s 7:userAnnotations:Ms 8:user:i
        core.PodCondition 1:type:s 7:observedGeneration:i 2:status:s 3:lastProbeTime:t 4:lastTransitionTime:t 5:reason:s 6:message:s
        core.PodDNSConfig 1:nameservers:Rs 2:searches:Rs 3:options:Rm:core.PodDNSConfigOption
        core.PodDNSConfigOption 1:name:s 2:value:s
        core.PodExtendedResourceClaimStatus 1:requestMappings:Rm:core.ContainerExtendedResourceRequest 2:resourceClaimName:s
        core.PodIP 1:ip:s
        core.PodOS 1:name:s
        core.PodReadinessGate 1:conditionType:s
        core.PodResourceClaim 1:name:s 3:resourceClaimName:s 4:resourceClaimTemplateName:s
        core.PodResourceClaimStatus 1:name:s 2:resourceClaimName:s
        core.PodSchedulingGate 1:name:s
        core.PodSchedulingGroup 1:podGroupName:s
        core.PodSecurityContext 1:seLinuxOptions:m:core.SELinuxOptions 8:windowsOptions:m:core.WindowsSecurityContextOptions 2:runAsUser:i 6:runAsGroup:i 3:runAsNonRoot:b 4:supplementalGroups:Ri 12:supplementalGroupsPolicy:s 5:fsGroup:i 7:sysctls:Rm:core.Sysctl 9:fsGroupChangePolicy:s 10:seccompProfile:m:core.SeccompProfile 11:appArmorProfile:m:core.AppArmorProfile 13:seLinuxChangePolicy:s
        core.PodSpec 1:volumes:Rm:core.Volume 20:initContainers:Rm:core.Container 2:containers:Rm:core.Container 34:ephemeralContainers:Rm:core.EphemeralContainer 3:restartPolicy:s 4:terminationGracePeriodSeconds:i 5:activeDeadlineSeconds:i 6:dnsPolicy:s 7:nodeSelector:Ms 8:serviceAccountName:s 9:serviceAccount:s 21:automountServiceAccountToken:b 10:nodeName:s 11:hostNetwork:b 12:hostPID:b 13:hostIPC:b 27:shareProcessNamespace:b 14:securityContext:m:core.PodSecurityContext 15:imagePullSecrets:Rm:core.LocalObjectReference 16:hostname:s 17:subdomain:s 18:affinity:m:core.Affinity 19:schedulerName:s 22:tolerations:Rm:core.Toleration 23:hostAliases:Rm:core.HostAlias 24:priorityClassName:s 25:priority:i 26:dnsConfig:m:core.PodDNSConfig 28:readinessGates:Rm:core.PodReadinessGate 29:runtimeClassName:s 30:enableServiceLinks:b 31:preemptionPolicy:s 32:overhead:Mq 33:topologySpreadConstraints:Rm:core.TopologySpreadConstraint 35:setHostnameAsFQDN:b 36:os:m:core.PodOS 37:hostUsers:b 38:schedulingGates:Rm:core.PodSchedulingGate 39:resourceClaims:Rm:core.PodResourceClaim 40:resources:m:core.ResourceRequirements 41:hostnameOverride:s 43:schedulingGroup:m:core.PodSchedulingGroup 44:evictionResponders:Rm:core.EvictionResponder
        core.PodStatus 17:observedGeneration:i 1:phase:s 2:conditions:Rm:core.PodCondition 3:message:s 4:reason:s 11:nominatedNodeName:s 5:hostIP:s 16:hostIPs:Rm:core.HostIP 6:podIP:s 12:podIPs:Rm:core.PodIP 7:startTime:t 10:initContainerStatuses:Rm:core.ContainerStatus 8:containerStatuses:Rm:core.ContainerStatus 9:qosClass:s 13:ephemeralContainerStatuses:Rm:core.ContainerStatus 14:resize:s 15:resourceClaimStatuses:Rm:core.PodResourceClaimStatus 18:extendedResourceClaimStatus:m:core.PodExtendedResourceClaimStatus 19:allocatedResources:Mq 20:resources:m:core.ResourceRequirements 21:nodeAllocatableResourceClaimStatuses:Rm:core.NodeAllocatableResourceClaimStatus 22:volumeHealth:Rm:core.PodVolumeHealth
        core.PodTemplate 1:metadata:m:meta.ObjectMeta 2:template:m:core.PodTemplateSpec
        core.PodTemplateSpec 1:metadata:m:meta.ObjectMeta 2:spec:m:core.PodSpec
        core.PodVolumeHealth 1:name:s 2:healthConditions:Rm:core.VolumeHealthCondition 3:lastTransitionTime:t
        core.PortStatus 1:port:i 2:protocol:s 3:error:s
        core.PortworxVolumeSource 1:volumeID:s 2:fsType:s 3:readOnly:b
        core.PreferredSchedulingTerm 1:weight:i 2:preference:m:core.NodeSelectorTerm
        core.Probe 1:handler:m:core.ProbeHandler 2:initialDelaySeconds:i 3:timeoutSeconds:i 4:periodSeconds:i 5:successThreshold:i 6:failureThreshold:i 7:terminationGracePeriodSeconds:i
        core.ProbeHandler 1:exec:m:core.ExecAction 2:httpGet:m:core.HTTPGetAction 3:tcpSocket:m:core.TCPSocketAction 4:grpc:m:core.GRPCAction
        core.ProjectedVolumeSource 1:sources:Rm:core.VolumeProjection 2:defaultMode:i 3:defaultUser:i
        core.QuobyteVolumeSource 1:registry:s 2:volume:s 3:readOnly:b 4:user:s 5:group:s 6:tenant:s
        core.RBDVolumeSource 1:monitors:Rs 2:image:s 3:fsType:s 4:pool:s 5:user:s 6:keyring:s 7:secretRef:m:core.LocalObjectReference 8:readOnly:b
        core.ReplicationController 1:metadata:m:meta.ObjectMeta 2:spec:m:core.ReplicationControllerSpec 3:status:m:core.ReplicationControllerStatus
        core.ReplicationControllerCondition 1:type:s 2:status:s 3:lastTransitionTime:t 4:reason:s 5:message:s
        core.ReplicationControllerSpec 1:replicas:i 4:minReadySeconds:i 2:selector:Ms 3:template:m:core.PodTemplateSpec
        core.ReplicationControllerStatus 1:replicas:i 2:fullyLabeledReplicas:i 4:readyReplicas:i 5:availableReplicas:i 3:observedGeneration:i 6:conditions:Rm:core.ReplicationControllerCondition
        core.ResourceClaim 1:name:s 2:request:s
        core.ResourceFieldSelector 1:containerName:s 2:resource:s 3:divisor:q
        core.ResourceHealth 1:resourceID:s 2:health:s 6:message:s
        core.ResourceQuota 1:metadata:m:meta.ObjectMeta 2:spec:m:core.ResourceQuotaSpec 3:status:m:core.ResourceQuotaStatus
        core.ResourceQuotaSpec 1:hard:Mq 2:scopes:Rs 3:scopeSelector:m:core.ScopeSelector
        core.ResourceQuotaStatus 1:hard:Mq 2:used:Mq
        core.ResourceRequirements 1:limits:Mq 2:requests:Mq 3:claims:Rm:core.ResourceClaim
        core.ResourceStatus 1:name:s 2:resources:Rm:core.ResourceHealth
        core.SELinuxOptions 1:user:s 2:role:s 3:type:s 4:level:s
        core.ScaleIOVolumeSource 1:gateway:s 2:system:s 3:secretRef:m:core.LocalObjectReference 4:sslEnabled:b 5:protectionDomain:s 6:storagePool:s 7:storageMode:s 8:volumeName:s 9:fsType:s 10:readOnly:b
        core.ScopeSelector 1:matchExpressions:Rm:core.ScopedResourceSelectorRequirement
        core.ScopedResourceSelectorRequirement 1:scopeName:s 2:operator:s 3:values:Rs
        core.SeccompProfile 1:type:s 2:localhostProfile:s
        core.Secret 1:metadata:m:meta.ObjectMeta 5:immutable:b 2:data:My 4:stringData:Ms 3:type:s
        core.SecretEnvSource 1:localObjectReference:m:core.LocalObjectReference 2:optional:b
        core.SecretKeySelector 1:localObjectReference:m:core.LocalObjectReference 2:key:s 3:optional:b
        core.SecretProjection 1:localObjectReference:m:core.LocalObjectReference 2:items:Rm:core.KeyToPath 4:optional:b
        core.SecretVolumeSource 1:secretName:s 2:items:Rm:core.KeyToPath 3:defaultMode:i 4:optional:b 5:defaultUser:i
        core.SecurityContext 1:capabilities:m:core.Capabilities 2:privileged:b 3:seLinuxOptions:m:core.SELinuxOptions 10:windowsOptions:m:core.WindowsSecurityContextOptions 4:runAsUser:i 8:runAsGroup:i 5:runAsNonRoot:b 6:readOnlyRootFilesystem:b 7:allowPrivilegeEscalation:b 9:procMount:s 11:seccompProfile:m:core.SeccompProfile 12:appArmorProfile:m:core.AppArmorProfile
        core.Service 1:metadata:m:meta.ObjectMeta 2:spec:m:core.ServiceSpec 3:status:m:core.ServiceStatus
        core.ServiceAccount 1:metadata:m:meta.ObjectMeta 2:secrets:Rm:core.ObjectReference 3:imagePullSecrets:Rm:core.LocalObjectReference 4:automountServiceAccountToken:b
        core.ServiceAccountTokenProjection 1:audience:s 2:expirationSeconds:i 3:path:s 4:user:i
        core.ServicePort 1:name:s 2:protocol:s 6:appProtocol:s 3:port:i 4:targetPort:n 5:nodePort:i
        core.ServiceSpec 1:ports:Rm:core.ServicePort 2:selector:Ms 3:clusterIP:s 18:clusterIPs:Rs 4:type:s 5:externalIPs:Rs 7:sessionAffinity:s 8:loadBalancerIP:s 9:loadBalancerSourceRanges:Rs 10:externalName:s 11:externalTrafficPolicy:s 12:healthCheckNodePort:i 13:publishNotReadyAddresses:b 14:sessionAffinityConfig:m:core.SessionAffinityConfig 19:ipFamilies:Rs 17:ipFamilyPolicy:s 20:allocateLoadBalancerNodePorts:b 21:loadBalancerClass:s 22:internalTrafficPolicy:s 23:trafficDistribution:s
        core.ServiceStatus 1:loadBalancer:m:core.LoadBalancerStatus 2:conditions:Rm:meta.Condition
        core.SessionAffinityConfig 1:clientIP:m:core.ClientIPConfig
        core.SleepAction 1:seconds:i
        core.StorageOSVolumeSource 1:volumeName:s 2:volumeNamespace:s 3:fsType:s 4:readOnly:b 5:secretRef:m:core.LocalObjectReference
        core.Sysctl 1:name:s 2:value:s
        core.TCPSocketAction 1:port:n 2:host:s
        core.Toleration 1:key:s 2:operator:s 3:value:s 4:effect:s 5:tolerationSeconds:i
        core.TopologySpreadConstraint 1:maxSkew:i 2:topologyKey:s 3:whenUnsatisfiable:s 4:labelSelector:m:meta.LabelSelector 5:minDomains:i 6:nodeAffinityPolicy:s 7:nodeTaintsPolicy:s 8:matchLabelKeys:Rs
        core.TypedLocalObjectReference 1:apiGroup:s 2:kind:s 3:name:s
        core.TypedObjectReference 1:apiGroup:s 2:kind:s 3:name:s 4:namespace:s
        core.Volume 1:name:s 2:volumeSource:m:core.VolumeSource
        core.VolumeDevice 1:name:s 2:devicePath:s
        core.VolumeHealthCondition 1:status:s 2:reason:s 3:message:s
        core.VolumeHealthStatus 1:healthConditions:Rm:core.VolumeHealthCondition 2:lastTransitionTime:t
        core.VolumeMount 1:name:s 2:readOnly:b 7:recursiveReadOnly:s 3:mountPath:s 4:subPath:s 5:mountPropagation:s 6:subPathExpr:s 8:bindMountOptions:Rs
        core.VolumeMountStatus 1:name:s 2:mountPath:s 3:readOnly:b 4:recursiveReadOnly:s 5:volumeStatus:m:core.VolumeStatus
        core.VolumeProjection 1:secret:m:core.SecretProjection 2:downwardAPI:m:core.DownwardAPIProjection 3:configMap:m:core.ConfigMapProjection 4:serviceAccountToken:m:core.ServiceAccountTokenProjection 5:clusterTrustBundle:m:core.ClusterTrustBundleProjection 6:podCertificate:m:core.PodCertificateProjection
        core.VolumeResourceRequirements 1:limits:Mq 2:requests:Mq
        core.VolumeSource 1:hostPath:m:core.HostPathVolumeSource 2:emptyDir:m:core.EmptyDirVolumeSource 3:gcePersistentDisk:m:core.GCEPersistentDiskVolumeSource 4:awsElasticBlockStore:m:core.AWSElasticBlockStoreVolumeSource 5:gitRepo:m:core.GitRepoVolumeSource 6:secret:m:core.SecretVolumeSource 7:nfs:m:core.NFSVolumeSource 8:iscsi:m:core.ISCSIVolumeSource 9:glusterfs:m:core.GlusterfsVolumeSource 10:persistentVolumeClaim:m:core.PersistentVolumeClaimVolumeSource 11:rbd:m:core.RBDVolumeSource 12:flexVolume:m:core.FlexVolumeSource 13:cinder:m:core.CinderVolumeSource 14:cephfs:m:core.CephFSVolumeSource 15:flocker:m:core.FlockerVolumeSource 16:downwardAPI:m:core.DownwardAPIVolumeSource 17:fc:m:core.FCVolumeSource 18:azureFile:m:core.AzureFileVolumeSource 19:configMap:m:core.ConfigMapVolumeSource 20:vsphereVolume:m:core.VsphereVirtualDiskVolumeSource 21:quobyte:m:core.QuobyteVolumeSource 22:azureDisk:m:core.AzureDiskVolumeSource 23:photonPersistentDisk:m:core.PhotonPersistentDiskVolumeSource 26:projected:m:core.ProjectedVolumeSource 24:portworxVolume:m:core.PortworxVolumeSource 25:scaleIO:m:core.ScaleIOVolumeSource 27:storageos:m:core.StorageOSVolumeSource 28:csi:m:core.CSIVolumeSource 29:ephemeral:m:core.EphemeralVolumeSource 30:image:m:core.ImageVolumeSource
        core.VolumeStatus 1:image:m:core.ImageVolumeStatus
        core.VsphereVirtualDiskVolumeSource 1:volumePath:s 2:fsType:s 3:storagePolicyName:s 4:storagePolicyID:s
        core.WeightedPodAffinityTerm 1:weight:i 2:podAffinityTerm:m:core.PodAffinityTerm
        core.WindowsSecurityContextOptions 1:gmsaCredentialSpecName:s 2:gmsaCredentialSpec:s 3:runAsUserName:s 4:hostProcess:b
        meta.Condition 1:type:s 2:status:s 3:observedGeneration:i 4:lastTransitionTime:t 5:reason:s 6:message:s
        meta.LabelSelector 1:matchLabels:Ms 2:matchExpressions:Rm:meta.LabelSelectorRequirement
        meta.LabelSelectorRequirement 1:key:s 2:operator:s 3:values:Rs
        meta.ManagedFieldsEntry 1:manager:s 2:operation:s 3:apiVersion:s 4:time:t 6:fieldsType:s 7:fieldsV1:x 8:subresource:s
        meta.ObjectMeta 1:name:s 2:generateName:s 3:namespace:s 4:selfLink:s 5:uid:s 6:resourceVersion:s 7:generation:i 8:creationTimestamp:t 9:deletionTimestamp:t 10:deletionGracePeriodSeconds:i 11:labels:Ms 12:annotations:Ms 13:ownerReferences:Rm:meta.OwnerReference 14:finalizers:Rs 17:managedFields:Rm:meta.ManagedFieldsEntry
        meta.OwnerReference 5:apiVersion:s 1:kind:s 3:name:s 4:uid:s 6:controller:b 7:blockOwnerDeletion:b
        """
}
