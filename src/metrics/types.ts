/** The seed API's monitoring types, field for field. */
export interface CpuMetrics { usage: number; cores: number; loadAverage: [number, number, number] }
export interface MemoryMetrics { used: number; total: number; free: number; usagePercent: number }
export interface DiskMetrics { used: number; total: number; free: number; usagePercent: number }
export interface GpuMemory { used: number; total: number; free: number; usagePercent: number }
export interface GpuMetrics { id: number; name: string; memory: GpuMemory; utilization: number; temperature?: number }
export interface ModelMetrics { active: number; total: number; memoryUsage: number }
export interface RequestMetrics { total: number; active: number; averageResponseTime: number; errorRate: number }

export interface SystemMetrics {
  timestamp: string;
  cpu: CpuMetrics;
  memory: MemoryMetrics;
  disk: DiskMetrics;
  gpu?: GpuMetrics[];
  models: ModelMetrics;
  requests: RequestMetrics;
  uptime: number;
  // Beyond the seed API:
  /** The models' filesystem (config basePath), only when it is not the data dir's. */
  modelsDisk?: DiskMetrics;
  /** Throughput and load read from each running llama-server's own /metrics. */
  llamaServers?: import("./llama-metrics").LlamaServerMetrics[];
}
