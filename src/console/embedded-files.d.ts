// Files imported `with { type: "file" }` (static assets embedded into the compiled executable):
// Bun gives the import as a path string (a /$bunfs/ path inside the executable).
declare module "*.css" {
  const path: string;
  export default path;
}
declare module "*.min.js" {
  const path: string;
  export default path;
}
declare module "*/static/console.js" {
  const path: string;
  export default path;
}
declare module "*/static/activity.js" {
  const path: string;
  export default path;
}
