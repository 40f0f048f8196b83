/*
 * What every kernel file of the OpenCL backend shares (compiled first: see
 * CMakeLists.txt). Weight matrices, embeddings and KV caches are f32, f16 (read
 * with vload_half: no cl_khr_fp16 needed) or bf16 (ushort, the top half of an
 * f32); the kernels that read them exist once per type, through these macros.
 */

/* One weight element, and four from element k on, as floats: per type. */
#define LOAD1_f32(p, k) ((p)[k])
#define LOAD4_f32(p, k) vload4(0, (p) + (k))
#define LOAD1_f16(p, k) vload_half(0, (p) + (k))
#define LOAD4_f16(p, k) vload_half4(0, (p) + (k))
#define LOAD1_bf16(p, k) as_float((uint)(p)[k] << 16)
#define LOAD4_bf16(p, k) as_float4(convert_uint4(vload4(0, (p) + (k))) << 16)
#define WTYPE_f32 float
#define WTYPE_f16 half
#define WTYPE_bf16 ushort
