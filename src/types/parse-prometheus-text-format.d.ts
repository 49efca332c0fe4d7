// The package ships no types; this is the prom2json-compatible shape it returns.
declare module "parse-prometheus-text-format" {
  interface PromMetricSample {
    labels?: Record<string, string>;
    value?: string;
    buckets?: Record<string, string>;
    quantiles?: Record<string, string>;
    count?: string;
    sum?: string;
  }
  interface PromMetricFamily {
    name: string;
    help: string;
    type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED";
    metrics: PromMetricSample[];
  }
  export default function parsePrometheusTextFormat(text: string): PromMetricFamily[];
}
