// node-nvidia-smi runs `nvidia-smi -q -x` and hands back xml2js output
// (explicitArray: false, trim: true): one object per element, arrays only where repeated.
declare module "node-nvidia-smi" {
  export default function nvidiaSmi(callback: (err: unknown, data: unknown) => void): void;
}

// The part of xml2js (node-nvidia-smi's parser) the GPU tests call to turn fixtures into that object.
declare module "xml2js" {
  export function parseString(xml: string, options: { explicitArray?: boolean; trim?: boolean }, callback: (err: unknown, data: unknown) => void): void;
}
