/*
** lmath.h: the helpers the math binding files share (lmath.c). Binding
** level: they raise Lua errors and push temporaries on the Lua stack.
*/
#ifndef LT_LMATH_H
#define LT_LMATH_H

#include "lt_lua.h"
#include "ops.h"

int lm_kindof(lt_dtype d);
void lm_no_cuda(lua_State *L, const lt_tensor *t);
lt_tensor *lm_checkt(lua_State *L, int i);
lt_tensor *lm_testt(lua_State *L, int i);
lt_tensor *lm_optt(lua_State *L, int i);
const char *lm_shape_str(char *buf, size_t len, int nd, const int64_t *s);
int lm_domain_of(lt_dtype d);
lt_dtype lm_domain_dtype(int dom);
lt_dtype lm_promote(lua_State *L, lt_dtype a, lt_dtype b);
lt_tensor *lm_push_copy(lua_State *L, const lt_tensor *t, lt_dtype dt);
lt_tensor *lm_contig(lua_State *L, lt_tensor *t, lt_dtype dt);
lt_tensor *lm_push_convert(lua_State *L, const lt_tensor *src, lt_dtype dt);
int64_t lm_prod(const int64_t *s, int from, int to);
void lm_need_floating(lua_State *L, lt_dtype dt, int arg, const char *name);
lt_dtype lm_scalar_promote(lt_dtype t, int isfloat);
int lm_is_float_number(lua_State *L, int i);
lt_tensor *lm_push_scalar(lua_State *L, int idx, lt_dtype cd);
void lm_check_operand(lua_State *L, int i, int arg);
void lm_broadcast_error(lua_State *L, int arg, const lt_tensor *a, const lt_tensor *b);
void lm_need_blas(lua_State *L, lt_dtype gd);
lt_dtype lm_gemm_dtype(lt_dtype od);
/* the channel checks of a convolution of x by w (p->C, p->O and p->groups
   set): w's input channels times groups are p->C (raised on arg 1), p->O
   is divisible by groups (arg 7) */
void lm_conv_check_groups(lua_State *L, const lt_tensor *x, const lt_tensor *w, const lt_conv *p);
/* the dtype of a convolution of x by w (floating, raised on arg 1) with
   bias (p->O elements, arg 3) or NULL; *gd the dtype it computes in
   (float32 or float64), whose BLAS is loaded */
lt_dtype lm_conv_dtypes(lua_State *L, const lt_tensor *x, const lt_tensor *w, const lt_tensor *bias,
                        const lt_conv *p, lt_dtype *gd);
int lm_blas_ok(const lt_tensor *t, int64_t R, int64_t C, int *trans, int64_t *ld);
lt_tensor *lm_matmul(lua_State *L, const lt_tensor *a0, const lt_tensor *b0, int arg);
lt_tensor *lm_matmul_bias(lua_State *L, const lt_tensor *a0, const lt_tensor *b0, int arg,
                          const lt_tensor *bias, int *added);

#endif
