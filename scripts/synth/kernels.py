"""numba kernels of the renderer: skinning + projection, rasterisation, shading + resolve.

All work in supersampled pixel coordinates (pixel (c, r) covers [c, c+1) x [r, r+1), centre at
c + 0.5). Compiled once and cached on disk (cache=True; NUMBA_CACHE_DIR may redirect it).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def bone_palette(states, inv_bind, out_anim, out_skin):
    """states [46,7] (t xyz, q xyzw) -> out_anim [46,3,4] (bone transforms) and
    out_skin [46,3,4] = anim @ inv_bind (inv_bind [46,4,4])."""
    for b in range(states.shape[0]):
        tx, ty, tz = states[b, 0], states[b, 1], states[b, 2]
        x, y, z, w = states[b, 3], states[b, 4], states[b, 5], states[b, 6]
        n = math.sqrt(x * x + y * y + z * z + w * w)
        if n < 1e-12:
            x, y, z, w = 0.0, 0.0, 0.0, 1.0
        else:
            x, y, z, w = x / n, y / n, z / n, w / n
        m = out_anim[b]
        m[0, 0] = 1 - 2 * (y * y + z * z)
        m[0, 1] = 2 * (x * y - z * w)
        m[0, 2] = 2 * (x * z + y * w)
        m[1, 0] = 2 * (x * y + z * w)
        m[1, 1] = 1 - 2 * (x * x + z * z)
        m[1, 2] = 2 * (y * z - x * w)
        m[2, 0] = 2 * (x * z - y * w)
        m[2, 1] = 2 * (y * z + x * w)
        m[2, 2] = 1 - 2 * (x * x + y * y)
        m[0, 3] = tx
        m[1, 3] = ty
        m[2, 3] = tz
        s = out_skin[b]
        for i in range(3):
            for j in range(4):
                acc = 0.0
                for k in range(3):
                    acc += m[i, k] * inv_bind[b, k, j]
                if j == 3:
                    acc += m[i, 3]
                s[i, j] = acc


@njit(cache=True)
def skin_project(pos, nrm, bidx, bw, palette, view, fpx, ox, oy, light, ambient, diffuse,
                 out_xy, out_z, out_shade, out_cam):
    """Skin vertices with the palette [K,3,4] (vertices without bones stay put), transform by
    view [3,4] (world -> camera: x right, y up, z forward) and project:
    x = ox + fpx * cx / cz, y = oy - fpx * cy / cz. out_shade = ambient + diffuse * max(0, n.l)
    with the skinned normal turned towards the camera first (two-sided lighting); out_cam =
    camera-space positions."""
    for v in range(pos.shape[0]):
        x, y, z = pos[v, 0], pos[v, 1], pos[v, 2]
        nx, ny, nz = nrm[v, 0], nrm[v, 1], nrm[v, 2]
        px = py = pz = 0.0
        qx = qy = qz = 0.0
        wsum = 0.0
        for k in range(4):
            b = bidx[v, k]
            w = bw[v, k]
            if b < 0 or w <= 0.0:
                continue
            m = palette[b]
            px += w * (m[0, 0] * x + m[0, 1] * y + m[0, 2] * z + m[0, 3])
            py += w * (m[1, 0] * x + m[1, 1] * y + m[1, 2] * z + m[1, 3])
            pz += w * (m[2, 0] * x + m[2, 1] * y + m[2, 2] * z + m[2, 3])
            qx += w * (m[0, 0] * nx + m[0, 1] * ny + m[0, 2] * nz)
            qy += w * (m[1, 0] * nx + m[1, 1] * ny + m[1, 2] * nz)
            qz += w * (m[2, 0] * nx + m[2, 1] * ny + m[2, 2] * nz)
            wsum += w
        if wsum <= 0.0:
            px, py, pz, qx, qy, qz = x, y, z, nx, ny, nz
        elif abs(wsum - 1.0) > 1e-6:
            px /= wsum
            py /= wsum
            pz /= wsum
        nl = math.sqrt(qx * qx + qy * qy + qz * qz)
        if nl > 1e-12:
            qx /= nl
            qy /= nl
            qz /= nl
        cx = view[0, 0] * px + view[0, 1] * py + view[0, 2] * pz + view[0, 3]
        cy = view[1, 0] * px + view[1, 1] * py + view[1, 2] * pz + view[1, 3]
        cz = view[2, 0] * px + view[2, 1] * py + view[2, 2] * pz + view[2, 3]
        ncx = view[0, 0] * qx + view[0, 1] * qy + view[0, 2] * qz
        ncy = view[1, 0] * qx + view[1, 1] * qy + view[1, 2] * qz
        ncz = view[2, 0] * qx + view[2, 1] * qy + view[2, 2] * qz
        if ncx * cx + ncy * cy + ncz * cz > 0.0:
            qx, qy, qz = -qx, -qy, -qz
        lam = qx * light[0] + qy * light[1] + qz * light[2]
        out_shade[v] = ambient + diffuse * (lam if lam > 0.0 else 0.0)
        out_z[v] = cz
        out_cam[v, 0] = cx
        out_cam[v, 1] = cy
        out_cam[v, 2] = cz
        if cz > 1e-9:
            out_xy[v, 0] = ox + fpx * cx / cz
            out_xy[v, 1] = oy - fpx * cy / cz
        else:
            out_xy[v, 0] = 0.0
            out_xy[v, 1] = 0.0


@njit(cache=True)
def keypoints_world(bones, head_prop, face_offsets, body_bones, out):
    """OpenPose-18 points [18,3]: rows with body_bones[i] >= 0 take that bone's origin; row 1
    (neck) the mean of arm_L and arm_R (bones 5 and 20); face rows (body_bones[i] == -1) are
    face_offsets[i] in the frame head bone (16) x head_prop [4,4]."""
    x, y, z, w = bones[16, 3], bones[16, 4], bones[16, 5], bones[16, 6]
    n = math.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    hb = np.empty((3, 4))
    hb[0, 0] = 1 - 2 * (y * y + z * z)
    hb[0, 1] = 2 * (x * y - z * w)
    hb[0, 2] = 2 * (x * z + y * w)
    hb[1, 0] = 2 * (x * y + z * w)
    hb[1, 1] = 1 - 2 * (x * x + z * z)
    hb[1, 2] = 2 * (y * z - x * w)
    hb[2, 0] = 2 * (x * z - y * w)
    hb[2, 1] = 2 * (y * z + x * w)
    hb[2, 2] = 1 - 2 * (x * x + y * y)
    hb[0, 3], hb[1, 3], hb[2, 3] = bones[16, 0], bones[16, 1], bones[16, 2]
    head = np.empty((3, 4))
    for i in range(3):
        for j in range(4):
            acc = hb[i, 3] if j == 3 else 0.0
            for k in range(3):
                acc += hb[i, k] * head_prop[k, j]
            head[i, j] = acc
    for i in range(out.shape[0]):
        b = body_bones[i]
        if b >= 0:
            out[i, 0], out[i, 1], out[i, 2] = bones[b, 0], bones[b, 1], bones[b, 2]
        elif b == -2:
            for k in range(3):
                out[i, k] = 0.5 * (bones[5, k] + bones[20, k])
        else:
            fx, fy, fz = face_offsets[i, 0], face_offsets[i, 1], face_offsets[i, 2]
            for k in range(3):
                out[i, k] = head[k, 0] * fx + head[k, 1] * fy + head[k, 2] * fz + head[k, 3]


@njit(cache=True)
def _texel_alpha(tex, off, w, h, u, v):
    x = int(math.floor(u * w)) % w
    y = int(math.floor(v * h)) % h
    return tex[off + (y * w + x) * 4 + 3]


@njit(cache=True)
def rasterize(xy, z, uv, faces, tri_part, part_alpha_test, part_cull, tex, tex_off, tex_w, tex_h,
              near, izbuf, tri_buf, b1buf, b2buf, bbox):
    """Depth-buffer pass. Per covered sample: 1 / camera depth of the nearest surface (0 where
    empty), triangle id (-1 where empty) and the perspective-correct barycentrics of its
    corners 1 and 2. Alpha-tested parts (transparent materials) skip samples whose texel
    alpha < 128. Parts with part_cull set drop triangles seen from behind (counter-clockwise
    seen from outside is the front), as the game does for opaque materials. bbox[:] = first row, last row, first column, last column written
    (bbox[0] > bbox[1] when nothing was)."""
    H, W = izbuf.shape
    for r in range(H):
        for c in range(W):
            izbuf[r, c] = 0.0
            tri_buf[r, c] = -1
    rlo, rhi, clo, chi = H, -1, W, -1
    for t in range(faces.shape[0]):
        i0, i1, i2 = faces[t, 0], faces[t, 1], faces[t, 2]
        z0, z1, z2 = z[i0], z[i1], z[i2]
        if z0 < near or z1 < near or z2 < near:
            continue
        x0, y0 = xy[i0, 0], xy[i0, 1]
        x1, y1 = xy[i1, 0], xy[i1, 1]
        x2, y2 = xy[i2, 0], xy[i2, 1]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if abs(area) < 1e-12:
            continue
        part = tri_part[t]
        # y points down the image and the camera frame is mirrored, so a counter-clockwise-out
        # triangle seen from the front has a negative signed area here
        if area > 0.0 and part_cull[part]:
            continue
        cmin = max(int(math.ceil(min(x0, min(x1, x2)) - 0.5)), 0)
        cmax = min(int(math.floor(max(x0, max(x1, x2)) - 0.5)), W - 1)
        rmin = max(int(math.ceil(min(y0, min(y1, y2)) - 0.5)), 0)
        rmax = min(int(math.floor(max(y0, max(y1, y2)) - 0.5)), H - 1)
        if cmin > cmax or rmin > rmax:
            continue
        inv_area = 1.0 / area
        iz0, iz1, iz2 = 1.0 / z0, 1.0 / z1, 1.0 / z2
        atest = part_alpha_test[part]
        # barycentrics are affine in the sample position: w = a * cx + b * cy + k
        a0 = (y1 - y2) * inv_area
        b0 = (x2 - x1) * inv_area
        k0 = (x1 * y2 - x2 * y1) * inv_area
        a1 = (y2 - y0) * inv_area
        b1 = (x0 - x2) * inv_area
        k1 = (x2 * y0 - x0 * y2) * inv_area
        a2 = -(a0 + a1)
        b2 = -(b0 + b1)
        k2 = 1.0 - k0 - k1
        for r in range(rmin, rmax + 1):
            cy = r + 0.5
            # columns where all three barycentrics are >= 0, widened by one pixel against
            # rounding (each sample is still tested below)
            lo = float(cmin)
            hi = float(cmax)
            e0 = b0 * cy + k0
            e1 = b1 * cy + k1
            e2 = b2 * cy + k2
            if a0 > 1e-12:
                lo = max(lo, math.floor(-e0 / a0 - 0.5))
            elif a0 < -1e-12:
                hi = min(hi, math.ceil(-e0 / a0 - 0.5))
            if a1 > 1e-12:
                lo = max(lo, math.floor(-e1 / a1 - 0.5))
            elif a1 < -1e-12:
                hi = min(hi, math.ceil(-e1 / a1 - 0.5))
            if a2 > 1e-12:
                lo = max(lo, math.floor(-e2 / a2 - 0.5))
            elif a2 < -1e-12:
                hi = min(hi, math.ceil(-e2 / a2 - 0.5))
            for c in range(int(lo), int(hi) + 1):
                cx = c + 0.5
                w0 = a0 * cx + e0
                w1 = a1 * cx + e1
                w2 = a2 * cx + e2
                if w0 < 0.0 or w1 < 0.0 or w2 < 0.0:
                    continue
                izp = w0 * iz0 + w1 * iz1 + w2 * iz2
                if izp <= izbuf[r, c]:
                    continue
                zp = 1.0 / izp
                p1 = w1 * iz1 * zp
                p2 = w2 * iz2 * zp
                if atest:
                    p0 = 1.0 - p1 - p2
                    u = p0 * uv[i0, 0] + p1 * uv[i1, 0] + p2 * uv[i2, 0]
                    v = p0 * uv[i0, 1] + p1 * uv[i1, 1] + p2 * uv[i2, 1]
                    if _texel_alpha(tex, tex_off[part], tex_w[part], tex_h[part], u, v) < 128:
                        continue
                izbuf[r, c] = izp
                tri_buf[r, c] = t
                b1buf[r, c] = p1
                b2buf[r, c] = p2
                if r < rlo:
                    rlo = r
                if r > rhi:
                    rhi = r
                if c < clo:
                    clo = c
                if c > chi:
                    chi = c
    bbox[0], bbox[1], bbox[2], bbox[3] = rlo, rhi, clo, chi


@njit(cache=True)
def _wrap(i, n):
    if i < 0 or i >= n:
        i %= n
    return i


@njit(cache=True)
def _shade_sample(t, p1, p2, faces, tri_part, uv, shade, tex, tex_off, tex_w, tex_h):
    """Texture (bilinear, wrapping) x interpolated vertex shade, 0..255 scale."""
    p0 = 1.0 - p1 - p2
    i0, i1, i2 = faces[t, 0], faces[t, 1], faces[t, 2]
    part = tri_part[t]
    u = p0 * uv[i0, 0] + p1 * uv[i1, 0] + p2 * uv[i2, 0]
    v = p0 * uv[i0, 1] + p1 * uv[i1, 1] + p2 * uv[i2, 1]
    k = p0 * shade[i0] + p1 * shade[i1] + p2 * shade[i2]
    w = tex_w[part]
    h = tex_h[part]
    off = tex_off[part]
    fx = u * w - 0.5
    fy = v * h - 0.5
    xf = math.floor(fx)
    yf = math.floor(fy)
    ax = fx - xf
    ay = fy - yf
    xa = _wrap(int(xf), w)
    ya = _wrap(int(yf), h)
    xb = xa + 1
    if xb == w:
        xb = 0
    yb = ya + 1
    if yb == h:
        yb = 0
    o00 = off + (ya * w + xa) * 4
    o01 = off + (ya * w + xb) * 4
    o10 = off + (yb * w + xa) * 4
    o11 = off + (yb * w + xb) * 4
    w00 = (1 - ax) * (1 - ay) * k
    w01 = ax * (1 - ay) * k
    w10 = (1 - ax) * ay * k
    w11 = ax * ay * k
    cr = w00 * tex[o00] + w01 * tex[o01] + w10 * tex[o10] + w11 * tex[o11]
    cg = w00 * tex[o00 + 1] + w01 * tex[o01 + 1] + w10 * tex[o10 + 1] + w11 * tex[o11 + 1]
    cb = w00 * tex[o00 + 2] + w01 * tex[o01 + 2] + w10 * tex[o10 + 2] + w11 * tex[o11 + 2]
    return cr, cg, cb


@njit(cache=True)
def shade_resolve(izbuf, tri_buf, b1buf, b2buf, faces, tri_part, part_is_object, uv, shade, tex,
                  tex_off, tex_w, tex_h, tint, ss, depth_origin, depth_scale, r0, r1, c0, c1,
                  out_rgb, out_alpha, out_props, out_depth):
    """Average ss x ss samples per output pixel, shading each triangle once per pixel (at its
    first sample there; multisample anti-aliasing): colour = bilinear texture x interpolated
    vertex shade x tint, clipped to 1. out_rgb uint8 premultiplied (never above 255 * alpha),
    out_alpha/out_props coverage, out_depth = min over covered samples of
    (z - depth_origin) * depth_scale, else +inf. Only output rows r0..r1-1 and columns
    c0..c1-1 are written (the caller fills the rest as empty)."""
    n = ss * ss
    inv = 1.0 / n
    t0, t1, t2 = tint[0] / 255.0, tint[1] / 255.0, tint[2] / 255.0
    tris = np.empty(n, np.int64)
    cnt = np.empty(n, np.int64)
    first_r = np.empty(n, np.int64)
    first_c = np.empty(n, np.int64)
    for ro in range(r0, r1):
        for co in range(c0, c1):
            m = 0
            cov = 0
            pcov = 0
            izmax = 0.0
            for dy in range(ss):
                r = ro * ss + dy
                for dx in range(ss):
                    c = co * ss + dx
                    t = tri_buf[r, c]
                    if t < 0:
                        continue
                    cov += 1
                    if part_is_object[tri_part[t]]:
                        pcov += 1
                    iz = izbuf[r, c]
                    if iz > izmax:
                        izmax = iz
                    j = 0
                    while j < m and tris[j] != t:
                        j += 1
                    if j == m:
                        tris[m] = t
                        cnt[m] = 1
                        first_r[m] = r
                        first_c[m] = c
                        m += 1
                    else:
                        cnt[j] += 1
            a = cov * inv
            out_alpha[ro, co] = a
            out_props[ro, co] = pcov * inv
            if cov == 0:
                out_depth[ro, co] = np.inf
                out_rgb[ro, co, 0] = 0
                out_rgb[ro, co, 1] = 0
                out_rgb[ro, co, 2] = 0
                continue
            sr = sg = sb = 0.0
            for j in range(m):
                r = first_r[j]
                c = first_c[j]
                cr, cg, cb = _shade_sample(tris[j], b1buf[r, c], b2buf[r, c], faces, tri_part,
                                           uv, shade, tex, tex_off, tex_w, tex_h)
                cr *= t0
                cg *= t1
                cb *= t2
                f = cnt[j]
                sr += f * (cr if cr < 1.0 else 1.0)
                sg += f * (cg if cg < 1.0 else 1.0)
                sb += f * (cb if cb < 1.0 else 1.0)
            out_depth[ro, co] = (1.0 / izmax - depth_origin) * depth_scale
            cap = math.floor(255.0 * a + 1e-6)
            out_rgb[ro, co, 0] = min(math.floor(255.0 * sr * inv + 0.5), cap)
            out_rgb[ro, co, 1] = min(math.floor(255.0 * sg * inv + 0.5), cap)
            out_rgb[ro, co, 2] = min(math.floor(255.0 * sb * inv + 0.5), cap)
