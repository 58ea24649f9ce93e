"""What the C++ side needs to know about each converted model (written into vision.json).

Output names map the TFLite output tensors (Identity, Identity_1, ...) to stable names; the
TorchScript module returns a tuple in the order of "outputs". Pre/post-processing constants
are MediaPipe's (pose_detection, pose_landmark and selfie_segmentation graphs, CPU variants).
"""
import os

RUNTIME_DESC = ("TFLite interpreter, WebAssembly build with XNNPACK delegate from npm "
                "@tensorflow/tfjs-tflite@0.0.1-alpha.10 (tflite_web_api_cc_simd), run under Node")
RUNTIME_SPLIT_NOTE = (
    "this runtime build cannot execute MediaPipe's custom op Convolution2DTransposeBias, so the "
    "reference is two real-runtime runs chained: the ORIGINAL model cut just before that op "
    "(every other op unchanged), then the op expressed as TFLite's builtin TRANSPOSE_CONV "
    "(+bias) and the model's final LOGISTIC, with the model's weights (scripts/mediapipe/"
    "tflite_edit.py)")

_LANDMARK_OUTPUTS = {"Identity": "landmarks", "Identity_1": "pose_flag",
                     "Identity_2": "segmentation", "Identity_3": "heatmap",
                     "Identity_4": "world_landmarks"}

MODEL_SPECS = {
    "pose_detection": {
        "input": {"height": 224, "width": 224, "range": [-1.0, 1.0]},
        "outputs_by_tflite_name": {"Identity": "boxes", "Identity_1": "scores"},
        "notes": {"boxes": "raw regressors per anchor: [dx, dy, w, h, kp0x, kp0y, ... kp3x, kp3y] "
                           "in 224-px units relative to the anchor centre",
                  "scores": "raw logits (sigmoid after clipping to +-100)"},
    },
    "selfie_segmentation": {
        "input": {"height": 256, "width": 256, "range": [0.0, 1.0]},
        "outputs_by_tflite_name": {"activation_10": "segmentation"},
        "notes": {"segmentation": "person probability (sigmoid already applied in the model)"},
    },
    "selfie_segmentation_landscape": {
        "input": {"height": 144, "width": 256, "range": [0.0, 1.0]},
        "outputs_by_tflite_name": {"segment_back": "segmentation"},
        "notes": {"segmentation": "person probability (sigmoid already applied in the model)"},
    },
}
for _v in ("lite", "full", "heavy"):
    MODEL_SPECS["pose_landmark_" + _v] = {
        "input": {"height": 256, "width": 256, "range": [0.0, 1.0]},
        "outputs_by_tflite_name": dict(_LANDMARK_OUTPUTS),
        "notes": {
            "landmarks": "39 x (x, y, z, visibility_logit, presence_logit); x, y in input pixels "
                         "(0..256), z in the same scale as x relative to the hip mid-point",
            "pose_flag": "pose presence probability (sigmoid already applied)",
            "segmentation": "person mask logits at 256x256 (apply sigmoid)",
            "heatmap": "64x64 per-landmark heatmap logits (for heatmap refinement)",
            "world_landmarks": "39 x (x, y, z) metric 3-D landmarks (metres, hip-centred)",
        },
    }

MEDIAPIPE = {
    "pose_detection": {
        "image_to_tensor": {"size": [224, 224], "keep_aspect_ratio": True,
                            "border": "zero (letterbox)", "range": [-1.0, 1.0]},
        "ssd_anchors": {"num_layers": 5, "min_scale": 0.1484375, "max_scale": 0.75,
                        "input_size_height": 224, "input_size_width": 224,
                        "anchor_offset_x": 0.5, "anchor_offset_y": 0.5,
                        "strides": [8, 16, 32, 32, 32], "aspect_ratios": [1.0],
                        "interpolated_scale_aspect_ratio": 1.0, "fixed_anchor_size": True,
                        "reduce_boxes_in_lowest_layer": False,
                        "anchors_per_cell": {"8": 2, "16": 2, "32": 6},
                        "num_anchors": 2254,
                        "anchor_order": "layer by layer (strides 8, 16, then the merged 32 "
                                        "layers); within a layer row-major y, x, then the "
                                        "anchors of the cell"},
        "tensors_to_detections": {"num_classes": 1, "num_boxes": 2254, "num_coords": 12,
                                  "box_coord_offset": 0, "keypoint_coord_offset": 4,
                                  "num_keypoints": 4, "num_values_per_keypoint": 2,
                                  "sigmoid_score": True, "score_clipping_thresh": 100.0,
                                  "reverse_output_order": True,
                                  "x_scale": 224.0, "y_scale": 224.0,
                                  "w_scale": 224.0, "h_scale": 224.0,
                                  "min_score_thresh": 0.5,
                                  "decode": "cx = box[0]/x_scale*anchor_w + anchor_cx; "
                                            "cy = box[1]/y_scale*anchor_h + anchor_cy; "
                                            "w = box[2]/w_scale*anchor_w; h = box[3]/h_scale*anchor_h; "
                                            "kp_k = box[4+2k..]/scale*anchor + anchor_c "
                                            "(anchor_w = anchor_h = 1, normalised to the "
                                            "letterboxed 224x224 input)"},
        "keypoints": {"0": "mid-hip centre", "1": "full-body size/rotation point",
                      "2": "mid-shoulder centre", "3": "upper-body size/rotation point"},
        "non_max_suppression": {"min_suppression_threshold": 0.3,
                                "overlap_type": "INTERSECTION_OVER_UNION",
                                "algorithm": "WEIGHTED"},
        "detection_to_roi": {"rotation_vector_start_keypoint_index": 0,
                             "rotation_vector_end_keypoint_index": 1,
                             "rotation_vector_target_angle_degrees": 90,
                             "rect": "centre = kp0, side = 2*|kp1-kp0| (in image pixels)",
                             "scale_x": 1.25, "scale_y": 1.25, "square_long": True},
    },
    "pose_landmark": {
        "image_to_tensor": {"size": [256, 256], "range": [0.0, 1.0],
                            "roi": "rotated square ROI warped to 256x256 (border replicate)"},
        "num_landmarks": 39, "num_body_landmarks": 33, "auxiliary_landmarks": [33, 34],
        "tensors_to_landmarks": {"input_image_width": 256, "input_image_height": 256,
                                 "visibility_activation": "SIGMOID",
                                 "presence_activation": "SIGMOID",
                                 "values_per_landmark": 5},
        "pose_flag_threshold": 0.5,
        "heatmap_refinement": {"kernel_size": 7, "min_confidence_to_refine": 0.5},
        "landmarks_to_roi": {"rotation_vector_start_keypoint_index": 33,
                             "rotation_vector_end_keypoint_index": 34,
                             "rotation_vector_target_angle_degrees": 90,
                             "scale_x": 1.25, "scale_y": 1.25, "square_long": True},
        "segmentation": {"activation": "SIGMOID", "size": [256, 256],
                         "smoothing_combine_with_previous_ratio": 0.7},
        "landmark_smoothing": {"one_euro": {"min_cutoff": 0.05, "beta": 80.0,
                                            "derivate_cutoff": 1.0},
                               "auxiliary_one_euro": {"min_cutoff": 0.01, "beta": 10.0,
                                                      "derivate_cutoff": 1.0},
                               "visibility_smoothing_alpha": 0.1},
        "landmark_names": [
            "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner",
            "right_eye", "right_eye_outer", "left_ear", "right_ear", "mouth_left",
            "mouth_right", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
            "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index",
            "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee",
            "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
            "left_foot_index", "right_foot_index", "aux_hip_centre", "aux_body_size_point",
            "aux_35", "aux_36", "aux_37", "aux_38"],
    },
    "selfie_segmentation": {
        "general": {"size": [256, 256], "range": [0.0, 1.0]},
        "landscape": {"size_hw": [144, 256], "range": [0.0, 1.0]},
        "output": "foreground probability (no extra activation)",
    },
}
