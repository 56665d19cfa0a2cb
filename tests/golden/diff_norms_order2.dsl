fn dyt__dx2(x; alpha = 0.5) {
  let t1 = alpha * x
  let t2 = sigmoid(-2 * t1) * sigmoid(2 * t1)
  4 * (alpha * (if 0 == t2 then 0 else -(2 * alpha * (tanh(t1) * t2))))
}
fn dyt__dx_dalpha(x; alpha = 0.5) {
  let t1 = alpha * x
  let t2 = sigmoid(-2 * t1) * sigmoid(2 * t1)
  4 * (t2 + alpha * (if 0 == t2 then 0 else -2 * (x * (tanh(t1) * t2))))
}
fn dyt__dalpha2(x; alpha = 0.5) {
  let t1 = alpha * x
  let t2 = sigmoid(-2 * t1) * sigmoid(2 * t1)
  4 * (x * (if 0 == t2 then 0 else -2 * (x * (tanh(t1) * t2))))
}
fn derf__dx2(x; alpha = 0.5, shift = 0) {
  let t1 = shift + alpha * x
  let t2 = exp(-t1^2)
  -2.256758334191025 * (alpha * (if 0 == t2 then 0 else alpha * (t1 * t2)))
}
fn derf__dx_dalpha(x; alpha = 0.5, shift = 0) {
  let t1 = shift + alpha * x
  let t2 = exp(-t1^2)
  1.1283791670955126 * (t2 - 2 * (alpha * (if 0 == t2 then 0 else x * (t1 * t2))))
}
fn derf__dx_dshift(x; alpha = 0.5, shift = 0) {
  let t1 = shift + alpha * x
  let t2 = exp(-t1^2)
  -2.256758334191025 * (alpha * (if 0 == t2 then 0 else t1 * t2))
}
fn derf__dalpha2(x; alpha = 0.5, shift = 0) {
  let t1 = shift + alpha * x
  let t2 = exp(-t1^2)
  -2.256758334191025 * (x * (if 0 == t2 then 0 else x * (t1 * t2)))
}
fn derf__dalpha_dshift(x; alpha = 0.5, shift = 0) {
  let t1 = shift + alpha * x
  let t2 = exp(-t1^2)
  -2.256758334191025 * (x * (if 0 == t2 then 0 else t1 * t2))
}
fn derf__dshift2(x; alpha = 0.5, shift = 0) {
  let t1 = shift + alpha * x
  let t2 = exp(-t1^2)
  -2.256758334191025 * (if 0 == t2 then 0 else t1 * t2)
}
