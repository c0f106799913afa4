export async function runPull(argv: string[]): Promise<number> { console.log("pull", argv); return 0; }
