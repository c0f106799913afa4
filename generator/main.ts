export async function runGenerator(argv: string[]): Promise<number> { console.log("gen", argv, process.argv); return 0; }
