// node-nvidia-smi runs `nvidia-smi -q -x` and hands back xml2js output
// (explicitArray: false, trim: true): one object per element, arrays only where repeated.
declare module "node-nvidia-smi" {
  export default function nvidiaSmi(callback: (err: unknown, data: unknown) => void): void;
}
